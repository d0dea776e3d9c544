#pragma once
// The weight formats' 16-byte chunks widened to f32 on the device, shared by the expert GEMV,
// the weight widening and the grouped expert GEMM so that every path multiplies the same values:
// bf16 exactly, int8 and int4 as q * scale (kernels/cpu/quantize.h's group-quantised layout).
#include <cstdint>

#include "kernels/cuda/expert_gemv.h"

namespace moe::cuda {

// A chunk is 16 bytes of a row: 8 bf16, 16 int8 or 32 int4 values (one scale: groups are whole chunks).
template <WeightFormat F>
struct Chunk;
template <>
struct Chunk<WeightFormat::kBF16> {
  static constexpr int kValues = 8;
};
template <>
struct Chunk<WeightFormat::kInt8> {
  static constexpr int kValues = 16;
};
template <>
struct Chunk<WeightFormat::kInt4> {
  static constexpr int kValues = 32;
};

template <WeightFormat F>
__device__ inline void unpack(const uint4& raw, float scale, float* out) {
  if constexpr (F == WeightFormat::kBF16) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xFFFF0000u);
    }
  } else if constexpr (F == WeightFormat::kInt8) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int b = 0; b < 4; ++b) out[4 * i + b] = float(int8_t((words[i] >> (8 * b)) & 0xFF)) * scale;
  } else {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const int q = int((words[i] >> (4 * n)) & 0xF);
        out[8 * i + n] = float((q ^ 8) - 8) * scale;
      }
  }
}

// Bytes of one row of `cols` values in format F.
template <WeightFormat F>
__host__ __device__ constexpr int64_t row_bytes(int64_t cols) {
  return F == WeightFormat::kBF16 ? cols * 2 : F == WeightFormat::kInt8 ? cols : cols / 2;
}

// 16-byte aligned data of whole chunks per row, and for int8/int4 scales and groups of whole
// chunks that divide the row.
inline bool valid_weights(const DeviceWeights& w) {
  const int values = w.format == WeightFormat::kBF16 ? 8 : w.format == WeightFormat::kInt8 ? 16 : 32;
  if (w.data == nullptr || reinterpret_cast<uintptr_t>(w.data) % 16 != 0 || w.rows <= 0 || w.cols <= 0 || w.cols % values != 0)
    return false;
  return w.format == WeightFormat::kBF16 ||
         (w.scales != nullptr && w.group_size >= values && w.group_size % values == 0 && w.cols % w.group_size == 0);
}

}  // namespace moe::cuda
