#pragma once
// The matmul's instruction-set paths (internal to kernels/cpu). Each computes output rows
// [r0, r1) of y = x W^T (+ b) for every token under matmul.h's determinism contract, so any
// path may compute any rows and the bits do not change.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "kernels/cpu/matmul.h"

namespace moe::cpu::detail {

inline constexpr int kLanes = 32;

struct MatmulJob {
  const float* x = nullptr;  // [m, w.cols]
  int64_t m = 0;
  const WeightMatrix* w = nullptr;
  float* y = nullptr;  // [m, w.rows]
  const float* bias = nullptr;
};

// The tree's last levels: eight partial sums, pairwise.
inline float reduce_eight(const float* v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

// Sixteen lanes to one sum, (l[i] + l[8 + i]) then the eight-lane tree: the int8- and
// bf16-activation modes' end.
inline float reduce_sixteen(const float* l) {
  float v[8];
  for (int i = 0; i < 8; ++i) v[i] = l[i] + l[8 + i];
  return reduce_eight(v);
}

// The fixed lane tree every path ends with: the four 8-lane quarters are added lane-wise,
// ((q0 + q1) + (q2 + q3)), then the eight lanes pairwise.
inline float reduce_lanes(const float* l) {
  float v[8];
  for (int i = 0; i < 8; ++i) v[i] = (l[i] + l[8 + i]) + (l[16 + i] + l[24 + i]);
  return reduce_eight(v);
}

// Element i of int8/int4 data as the integer it stands for (int4: two's-complement nibbles,
// element 2j in byte j's low half).
inline int quantized_at(const WeightMatrix& w, int64_t i) {
  if (w.dtype == DType::kI8) return static_cast<const int8_t*>(w.data)[i];
  const uint8_t byte = static_cast<const uint8_t*>(w.data)[i / 2];
  return (((i & 1) ? byte >> 4 : byte & 0xF) ^ 8) - 8;
}

// Weight element c of a row, widened (and dequantised: q * scale, rounded once) to f32.
inline float weight_at(const WeightMatrix& w, int64_t row, int64_t c) {
  const int64_t i = row * w.stride() + c;
  switch (w.dtype) {
    case DType::kF32: return static_cast<const float*>(w.data)[i];
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kI8:
    case DType::kI4: return float(quantized_at(w, i)) * w.scales[i / w.group_size];
    default: return 0.0f;
  }
}

// Scratch floats on whole cache lines, so that 64-byte loads never straddle two lines.
class AlignedFloats {
 public:
  float* get(size_t count) {
    if (count > capacity_) {
      capacity_ = (count + 15) / 16 * 16;
      data_.reset(static_cast<float*>(std::aligned_alloc(64, capacity_ * sizeof(float))));
      if (!data_) throw std::bad_alloc();
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  size_t capacity_ = 0;
};

void rows_portable(const MatmulJob& job, int64_t r0, int64_t r1);
// Each row widened to f32 once by `widen_row` (exactly), then dotted with every token in the
// 32 lanes (matmul_widened.cpp): MXFP4 and FP8 where the register paths do not take them.
void rows_widened(const MatmulJob& job, int64_t r0, int64_t r1, void (*widen_row)(const WeightMatrix&, int64_t, float*));
void rows_avx2(const MatmulJob& job, int64_t r0, int64_t r1);

// AVX-512 reads the activations in its own lane layout, prepared once per call (on the calling
// thread) into `prepared`; rows_avx512 then runs on any thread.
struct Avx512Input {
  const float* x = nullptr;  // [m, stride], zero-padded to whole 32-column blocks
  int64_t stride = 0;
  // Where a block's slots 16-31 are from its slots 0-15: 16 (in place), or half a row on for
  // the panel's half-major layout.
  int64_t half_offset = 16;
  std::vector<int32_t> groups;  // int8/int4: the scale group of each 8-column chunk (or 32-column block);
                                // fp8: the block-scale column of each 32-column block
  std::vector<int64_t> scale_rows;  // fp8: where each weight row's block scales start in `fp8_scales`
  // fp8: the block scales of the matrix's grid rows, times 2^120 when every one of them stays
  // exact so (fp8_folded: the widening's 2^120 folded into the scale, one multiply a value).
  std::vector<float> fp8_scales;
  bool fp8_folded = false;
  bool block_uniform = false;   // every 32-column block lies in one scale group
};
// A batch's tokens are laid out over `pool` (each token's row is its own).
void prepare_avx512(const MatmulJob& job, AlignedFloats& storage, Avx512Input& input, ThreadPool& pool);
// FP8 whose 32-column blocks each lie in one scale block (DeepSeek's 128 x 128) takes the
// AVX-512 tiles and panel like any other format; other block shapes are widened a row at a time.
bool avx512_takes_fp8(const MatmulJob& job);
void rows_avx512(const MatmulJob& job, const Avx512Input& input, int64_t r0, int64_t r1);

bool cpu_has_avx2();
bool cpu_has_avx512();

}  // namespace moe::cpu::detail
