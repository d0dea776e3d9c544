// The FP8 matmul path on AVX-512 (matmul_fp8.h): e4m3 bytes widened in registers by bit moves
// (the 7 magnitude bits placed under f32's exponent and mantissa, times 2^120: exact, subnormals
// included; 0x7F is NaN), times the block scale (one rounding), and fused-multiply-added into the
// 32 lanes as two 16-wide registers, so every value and every lane's order is the portable path's.
#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/matmul_fp8.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#endif
// GCC 12's own AVX-512 headers pass undefined vectors as unused operands (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/fp8_widen_avx512.h"  // inside the region: its code is AVX-512

namespace moe::cpu::detail {
namespace {

// 16 e4m3 values at q as exact f32.
inline __m512 widen16(const uint8_t* q) { return e4m3_widen16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))); }

// The scales of columns [c, c + 16) for increasing c, walking the row's blocks (no division on
// the hot path; a chunk across a block edge, rare, is filled element by element).
class BlockWalk {
 public:
  BlockWalk(const WeightMatrix& w, const float* scales)
      : w_(w), scales_(scales), block_(w.block_col0 / w.block_cols), end_((block_ + 1) * w.block_cols - w.block_col0) {}
  __m512 at(int64_t c) {
    while (c >= end_) {
      ++block_;
      end_ += w_.block_cols;
    }
    if (c + 16 <= end_) return _mm512_set1_ps(scales_[block_]);
    alignas(64) float s[16];
    for (int i = 0; i < 16; ++i) s[i] = scales_[(c + i + w_.block_col0) / w_.block_cols];
    return _mm512_load_ps(s);
  }

 private:
  const WeightMatrix& w_;
  const float* scales_;
  int64_t block_, end_;
};

inline float scalar_weight(const WeightMatrix& w, const uint8_t* q, const float* scales, int64_t c) {
  return e4m3_value(q[c]) * scales[(c + w.block_col0) / w.block_cols];
}

// Ends a lane pair: the partial last group element by element, then the fixed tree.
inline float finish(__m512 a0, __m512 a1, int64_t whole, int64_t cols, const float* x, const float* row) {
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, a0);
  _mm512_store_ps(lanes + 16, a1);
  for (int64_t c = whole; c < cols; ++c) lanes[c % kLanes] = std::fma(x[c], row[c], lanes[c % kLanes]);
  return reduce_lanes(lanes);
}

// Decode: one token's dot product with a row widened as it streams past.
float dot_streamed(const WeightMatrix& w, const uint8_t* q, const float* scales, const float* x) {
  // Lanes 0-15 in a0 and 16-31 in a1, named (not indexed) so that they stay in registers.
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  const int64_t pairs = w.cols / 32 * 32, whole = w.cols / 16 * 16;
  BlockWalk walk(w, scales);
  for (int64_t c = 0; c < pairs; c += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + c), _mm512_mul_ps(widen16(q + c), walk.at(c)), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + c + 16), _mm512_mul_ps(widen16(q + c + 16), walk.at(c + 16)), a1);
  }
  if (whole > pairs) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + pairs), _mm512_mul_ps(widen16(q + pairs), walk.at(pairs)), a0);
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, a0);
  _mm512_store_ps(lanes + 16, a1);
  for (int64_t c = whole; c < w.cols; ++c) lanes[c % kLanes] = std::fma(x[c], scalar_weight(w, q, scales, c), lanes[c % kLanes]);
  return reduce_lanes(lanes);
}

// Prefill: `n` (<= 4) widened rows against one token, the token's values loaded once for all.
void dot_widened(const float* const* rows, int n, int64_t cols, const float* x, float* out) {
  __m512 acc[4][2];
  for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const int64_t pairs = cols / 32 * 32, whole = cols / 16 * 16;
  const auto step = [&](int64_t c, int half) {
    const __m512 xv = _mm512_loadu_ps(x + c);
    for (int i = 0; i < n; ++i) acc[i][half] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(rows[i] + c), acc[i][half]);
  };
  for (int64_t c = 0; c < pairs; c += 32) {
    step(c, 0);
    step(c + 16, 1);
  }
  if (whole > pairs) step(pairs, 0);
  for (int i = 0; i < n; ++i) out[i] = finish(acc[i][0], acc[i][1], whole, cols, x, rows[i]);
}

}  // namespace

void rows_fp8_avx512(const MatmulJob& job, int64_t r0, int64_t r1) {
  const WeightMatrix& w = *job.w;
  const auto row_bytes = [&](int64_t r) { return static_cast<const uint8_t*>(w.data) + r * w.stride(); };
  const auto row_scales = [&](int64_t r) { return w.block_scales + ((r + w.block_row0) / w.block_rows) * w.block_stride; };
  if (job.m == 1) {
    for (int64_t r = r0; r < r1; ++r) {
      float sum = dot_streamed(w, row_bytes(r), row_scales(r), job.x);
      if (job.bias) sum += job.bias[r];
      job.y[r] = sum;
    }
    return;
  }
  // Tiles of four rows, each widened once into `widened`, then dotted with every token.
  thread_local std::vector<float> widened;
  widened.resize(size_t(4 * w.cols));
  const int64_t whole = w.cols / 16 * 16;
  for (int64_t r = r0; r < r1; r += 4) {
    const int n = int(std::min<int64_t>(4, r1 - r));
    const float* rows[4];
    for (int i = 0; i < n; ++i) {
      float* out = widened.data() + i * w.cols;
      const uint8_t* q = row_bytes(r + i);
      const float* scales = row_scales(r + i);
      BlockWalk walk(w, scales);
      for (int64_t c = 0; c < whole; c += 16) _mm512_storeu_ps(out + c, _mm512_mul_ps(widen16(q + c), walk.at(c)));
      for (int64_t c = whole; c < w.cols; ++c) out[c] = scalar_weight(w, q, scales, c);
      rows[i] = out;
    }
    for (int64_t t = 0; t < job.m; ++t) {
      float sums[4];
      dot_widened(rows, n, w.cols, job.x + t * w.cols, sums);
      for (int i = 0; i < n; ++i) job.y[t * w.rows + r + i] = job.bias ? sums[i] + job.bias[r + i] : sums[i];
    }
  }
}

}  // namespace moe::cpu::detail

#pragma GCC diagnostic pop
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
