#pragma once
// The weight formats' 16-byte chunks widened to f32 on the device, shared by the expert GEMV,
// the weight widening and the grouped expert GEMM so that every path multiplies the same values:
// bf16 exactly, int8 and int4 as q * scale (kernels/cpu/quantize.h's group-quantised layout), FP8
// as value(e4m3) * block scale, one f32 multiply as the CPU's kernels/cpu/fp8.h does it.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/cuda/expert_gemv.h"

namespace moe::cuda {

// A chunk is 16 bytes of a row: 8 bf16, 16 int8, 32 int4 or 16 fp8 values (one scale: groups and
// fp8 blocks are whole chunks).
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
template <>
struct Chunk<WeightFormat::kFp8> {
  static constexpr int kValues = 16;
};

// Where a chunk's scale is: int8/int4 groups run along the rows ([rows, cols / group]); fp8 blocks
// cover block_rows x group columns, the grid's rows block_stride scales apart.
struct ScaleGrid {
  const float* scales = nullptr;
  int64_t cols = 0;
  int group = 0;  // int8/int4: the group size; fp8: the block's columns
  int block_rows = 0;  // fp8 from here on
  int64_t block_stride = 0, row0 = 0, col0 = 0;
  int64_t row_groups = 0;  // int8/int4: cols / group
};

inline ScaleGrid scale_grid(const DeviceWeights& w) {
  if (w.format == WeightFormat::kFp8)
    return ScaleGrid{w.scales, w.cols, w.block_cols, w.block_rows, w.block_stride, w.block_row0, w.block_col0};
  ScaleGrid g{w.scales, w.cols, w.group_size};
  g.row_groups = w.group_size > 0 ? w.cols / w.group_size : 0;
  return g;
}

// The scale of the chunk whose first value is element (row, col). Divisions in 32 bits (a
// fraction of the 64-bit cost, once per 16-byte load; valid_weights bounds the indices).
template <WeightFormat F>
__device__ inline float chunk_scale(const ScaleGrid& g, int64_t row, int64_t col) {
  if constexpr (F == WeightFormat::kBF16) return 1.0f;
  else if constexpr (F == WeightFormat::kFp8)
    return __ldg(g.scales + int64_t(uint32_t(row + g.row0) / uint32_t(g.block_rows)) * g.block_stride +
                 uint32_t(col + g.col0) / uint32_t(g.group));
  else return __ldg(g.scales + row * g.row_groups + uint32_t(col) / uint32_t(g.group));
}

// Values 4i..4i+3 of a chunk (i < kValues / 4) before their scale: bf16's and e4m3's values,
// int8's and int4's integers. A kernel can widen a chunk a quarter at a time, or sum a chunk's
// products and scale the sum once (the GEMV). Integers become floats by the exponent trick
// (0x4B000000 | u is 2^23 + u exactly): a byte permute and an add on the full-rate pipes instead
// of a conversion each.
template <WeightFormat F>
__device__ inline void unpack4_unscaled(const uint4& raw, int i, float* out) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (F == WeightFormat::kBF16) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t word = words[2 * i + h];
      out[2 * h] = __uint_as_float(word << 16);
      out[2 * h + 1] = __uint_as_float(word & 0xFFFF0000u);
    }
  } else if constexpr (F == WeightFormat::kInt8) {
    const uint32_t biased = words[i] ^ 0x80808080u;  // q + 128 in each byte
#pragma unroll
    for (int b = 0; b < 4; ++b)  // bytes [q + 128, 0, 0, 0x4B]: 2^23 + q + 128
      out[b] = __uint_as_float(__byte_perm(biased, 0x4Bu, 0x4550u | unsigned(b))) - 8388736.0f;
  } else if constexpr (F == WeightFormat::kFp8) {
    // e4m3 -> f16 is exact (f16's range and precision hold every e4m3 value, NaN stays NaN), two
    // bytes per instruction on sm_89 and later; f16 -> f32 is exact too.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const __half2 pair(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(words[i] >> (16 * h)), __NV_E4M3));
      const float2 v = __half22float2(pair);  // .x: the lower byte, the earlier column
      out[2 * h] = v.x;
      out[2 * h + 1] = v.y;
    }
  } else {
    // Nibbles 8w + n of word w, n < 8: the even ones in the bytes of `low`, the odd in `high`.
    const uint32_t biased = words[i / 2] ^ 0x88888888u;  // q + 8 in each nibble
    const uint32_t low = biased & 0x0F0F0F0Fu, high = (biased >> 4) & 0x0F0F0F0Fu;
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      const int nibble = 4 * (i % 2) + n;
      const uint32_t bytes = nibble % 2 ? high : low;
      out[n] = __uint_as_float(__byte_perm(bytes, 0x4Bu, 0x4550u | unsigned(nibble / 2))) - 8388616.0f;
    }
  }
}

// The same values scaled: q * scale as the CPU's dequantisation rounds it, one f32 multiply
// (bf16: the value itself).
template <WeightFormat F>
__device__ inline void unpack4(const uint4& raw, int i, float scale, float* out) {
  unpack4_unscaled<F>(raw, i, out);
  if constexpr (F != WeightFormat::kBF16)
#pragma unroll
    for (int n = 0; n < 4; ++n) out[n] *= scale;
}

// A whole chunk, kValues floats.
template <WeightFormat F>
__device__ inline void unpack(const uint4& raw, float scale, float* out) {
#pragma unroll
  for (int i = 0; i < Chunk<F>::kValues / 4; ++i) unpack4<F>(raw, i, scale, out + 4 * i);
}

// Bytes of one row of `cols` values in format F.
template <WeightFormat F>
__host__ __device__ constexpr int64_t row_bytes(int64_t cols) {
  return F == WeightFormat::kBF16 ? cols * 2 : F == WeightFormat::kInt4 ? cols / 2 : cols;
}

// 16-byte aligned data of whole chunks per row; for int8/int4 scales and groups of whole chunks
// that divide the row; for fp8 scales and blocks of whole chunks (a partial edge block is fine),
// the grid's rows at least as long as the row's blocks.
inline bool valid_weights(const DeviceWeights& w) {
  const int values = w.format == WeightFormat::kBF16 ? 8 : w.format == WeightFormat::kInt4 ? 32 : 16;
  if (w.data == nullptr || reinterpret_cast<uintptr_t>(w.data) % 16 != 0 || w.rows <= 0 || w.cols <= 0 || w.cols % values != 0 ||
      w.cols > UINT32_MAX)
    return false;
  if (w.format == WeightFormat::kBF16) return true;
  if (w.format == WeightFormat::kFp8)
    return w.scales != nullptr && w.block_rows > 0 && w.block_cols >= values && w.block_cols % values == 0 &&
           w.block_row0 >= 0 && w.block_col0 >= 0 && w.block_col0 % values == 0 && w.block_row0 + w.rows <= UINT32_MAX &&
           w.block_col0 + w.cols <= UINT32_MAX &&
           w.block_stride >= (w.block_col0 + w.cols + w.block_cols - 1) / w.block_cols;
  return w.scales != nullptr && w.group_size >= values && w.group_size % values == 0 && w.cols % w.group_size == 0;
}

}  // namespace moe::cuda
