// The bf16-activation mode on AVX512-BF16: register tiles of up to 8 weight rows x 3 tokens,
// one 16-lane sum an output, one vdpbf16ps per 32-column block of a row and token (its odd
// products first, then the even, subnormals read and written as zeros: the rule of
// matmul_bf16_dot.h), the weights straight from memory (bf16 needs no widening), then the
// lanes to one sum by the sixteen-lane tree. A tile of rows meets every tile of tokens before
// the next rows are read, so a batch reads its rows from cache after the first tokens.
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/matmul_bf16_dot.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")
#endif
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/lane_tree_avx512.h"  // inside the region: its code is AVX-512

namespace moe::cpu::detail {
namespace {

constexpr int kMaxRows = 8, kMaxTokens = 3;
constexpr int64_t kAheadRows = 2 * kMaxRows;  // rows whose weights are asked for while a tile runs

template <int R, int T>
void tile(const MatmulJob& job, const Bf16Activations& a, int64_t row, int64_t t0) {
  const WeightMatrix& w = *job.w;
  const auto* weights = static_cast<const uint16_t*>(w.data);
  const int64_t full = w.cols / 32;
  const __mmask32 tail = __mmask32((uint64_t(1) << (w.cols % 32)) - 1);
  __m512 acc[R * T];
#pragma GCC unroll 24
  for (int o = 0; o < R * T; ++o) acc[o] = _mm512_setzero_ps();
  for (int64_t b = 0; b < a.blocks; ++b) {
    __m512bh x[T];
#pragma GCC unroll 3
    for (int k = 0; k < T; ++k) x[k] = (__m512bh)_mm512_load_si512(a.row(t0 + k) + b * 32);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const uint16_t* p = weights + (row + r) * w.stride() + b * 32;
      _mm_prefetch(reinterpret_cast<const char*>(p + kAheadRows * w.stride()), _MM_HINT_T1);
      const __m512bh wv = (__m512bh)(b < full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(tail, p));
#pragma GCC unroll 3
      for (int k = 0; k < T; ++k) acc[k * R + r] = _mm512_dpbf16_ps(acc[k * R + r], x[k], wv);
    }
  }
  float sums[(R * T + 7) / 8 * 8];
  sum_sixteen_lanes(acc, sums);  // token-major: output k * R + r
#pragma GCC unroll 24
  for (int o = 0; o < R * T; ++o) {
    const int64_t r = row + o % R, t = t0 + o / R;
    job.y[t * w.rows + r] = job.bias ? sums[o] + job.bias[r] : sums[o];
  }
}

using TileFn = void (*)(const MatmulJob&, const Bf16Activations&, int64_t, int64_t);

template <int R>
constexpr TileFn tiles_of_rows[kMaxTokens] = {&tile<R, 1>, &tile<R, 2>, &tile<R, 3>};

TileFn tile_for(int rows, int tokens) {
  static constexpr const TileFn* table[kMaxRows] = {tiles_of_rows<1>, tiles_of_rows<2>, tiles_of_rows<3>, tiles_of_rows<4>,
                                                    tiles_of_rows<5>, tiles_of_rows<6>, tiles_of_rows<7>, tiles_of_rows<8>};
  return table[rows - 1][tokens - 1];
}

}  // namespace

void prepare_bf16_activations_avx512(const MatmulJob& job, Bf16Activations& a) {
  // vcvtne2ps2bf16 rounds as the rule does (to nearest even, subnormals to signed zeros, NaN
  // quiet with its upper bits: the same 16 bits as the portable rounding on 64 M patterns).
  const int64_t cols = job.w->cols;
  a.m = job.m;
  a.blocks = (cols + 31) / 32;
  auto* x = reinterpret_cast<uint16_t*>(a.storage.get(size_t(a.m * a.blocks * 16)));
  for (int64_t t = 0; t < a.m; ++t) {
    const float* src = job.x + t * cols;
    uint16_t* dst = x + t * a.blocks * 32;
    for (int64_t c = 0; c < cols; c += 32) {
      const int64_t n = std::min<int64_t>(32, cols - c);
      const __mmask16 lo = __mmask16(n >= 16 ? 0xFFFF : (1u << n) - 1), hi = __mmask16(n >= 32 ? 0xFFFF : n > 16 ? (1u << (n - 16)) - 1 : 0);
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + c + 16), _mm512_maskz_loadu_ps(lo, src + c));
      _mm512_store_si512(dst + c, (__m512i)v);
    }
  }
  a.x = x;
}

void rows_bf16_dot_avx512(const MatmulJob& job, const Bf16Activations& a, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r += kMaxRows) {
    const int rows = int(std::min<int64_t>(kMaxRows, r1 - r));
    for (int64_t t = 0; t < job.m; t += kMaxTokens) tile_for(rows, int(std::min<int64_t>(kMaxTokens, job.m - t)))(job, a, r, t);
  }
}

}  // namespace moe::cpu::detail

#pragma GCC diagnostic pop
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
