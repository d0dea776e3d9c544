// The int8-activation mode on AVX512-VNNI: a register tile of up to 4 weight rows x 3 tokens,
// a span (64 bytes of each row) a step, one vpdpbusd per 64 bytes of int8 weights and two per
// 64 bytes of int4 ones (their low and high nibbles), the weights made unsigned once a row and
// span (w + 128, w + 8) and corrected by each token's per-lane bias, then the lanes' f32 sums as
// the portable path makes them (matmul_int8_dot.h).
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/matmul_int8_dot.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")
#endif
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/lane_tree_avx512.h"  // inside the region: its code is AVX-512

namespace moe::cpu::detail {
namespace {

constexpr int kMaxRows = 4, kMaxTokens = 3;
constexpr int64_t kAheadRows = 2 * kMaxRows;  // rows whose weights are asked for while a tile runs

struct Int8DotArgs {
  const uint8_t* data;  // the rows' bytes
  int64_t ld;           // bytes a row
  const float* scales;  // [rows, groups]
  int64_t groups;
  int group_size;
  const Int8Activations* a;
};

// 32-column blocks a span (64 bytes of a row): 4 of int4, 2 of int8.
template <bool kInt4>
constexpr int64_t kSpanBlocks = kInt4 ? 4 : 2;

// Each lane's weight group scale for the span whose first block is b0: block b's scale in the
// lanes of block b, zero past the `valid` blocks of the columns. kGroup32: a scale a block, read
// as they lie; otherwise (groups of 64, 96, ... columns) gathered one by one.
template <bool kInt4, bool kGroup32>
inline __m512 lane_weight_scales(const Int8DotArgs& w, const float* row_scales, int64_t b0, int64_t valid) {
  __m128 v;
  if constexpr (kGroup32) {
    v = _mm_maskz_loadu_ps(__mmask8((1u << valid) - 1), row_scales + b0);
  } else {
    alignas(16) float g[4] = {};
    for (int64_t i = 0; i < valid; ++i) g[i] = row_scales[(b0 + i) * 32 / w.group_size];
    v = _mm_load_ps(g);
  }
  const __m512i spread = kInt4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                               : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(v));
}

// The tile's sums over spans [s0, s1): kFull when every span has all its 64 bytes (and so all its
// blocks), the last span otherwise. The rows' and tokens' addresses are worked out once a tile,
// not once a span: the address arithmetic, not the dot products, bounded the loop.
template <bool kInt4, bool kGroup32, bool kFull, int R, int T>
inline void spans(const Int8DotArgs& w, const uint8_t* const (&rows)[R], const float* const (&scales)[R],
                  const std::byte* const (&records)[T], int64_t s0, int64_t s1, __m512 (&acc)[R][T]) {
  const Int8Activations& a = *w.a;
  const __m512i nibble = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8(int8_t(0x88)), sign = _mm512_set1_epi8(int8_t(0x80));
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t offset = s * 64, b0 = s * kSpanBlocks<kInt4>;
    const __mmask64 valid = kFull ? ~__mmask64(0) : (__mmask64(1) << (w.ld - offset)) - 1;
    const int64_t blocks = kFull ? kSpanBlocks<kInt4> : std::min<int64_t>(kSpanBlocks<kInt4>, a.blocks - b0);
    __m512i lo[R], hi[R];
    __m512 sw[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* p = rows[r] + offset;
      _mm_prefetch(reinterpret_cast<const char*>(p + kAheadRows * w.ld), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(p + 128), _MM_HINT_T0);  // L1: two spans on
      if (s % 4 == 0)  // the scales of the rows kAheadRows on: a line of 16 a step of 4 spans
        _mm_prefetch(reinterpret_cast<const char*>(scales[r] + kAheadRows * w.groups + b0), _MM_HINT_T1);
      const __m512i raw = kFull ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(valid, p);
      if constexpr (kInt4) {  // nibble w as w + 8 in 0..15 (past the columns: 8, meeting q = 0)
        const __m512i u = _mm512_xor_si512(raw, flip);
        lo[r] = _mm512_and_si512(u, nibble);
        hi[r] = _mm512_and_si512(_mm512_srli_epi16(u, 4), nibble);
      } else {  // w as w + 128 in 0..255 (past the columns: 128, meeting q = 0)
        lo[r] = _mm512_xor_si512(raw, sign);
      }
      sw[r] = lane_weight_scales<kInt4, kGroup32>(w, scales[r], b0, blocks);
    }
#pragma GCC unroll 3
    for (int k = 0; k < T; ++k) {
      const std::byte* rec = records[k] + s * Int8Activations::kRecordBytes;
      const __m512 sx = _mm512_load_ps(reinterpret_cast<const float*>(rec + 192));
      const __m512i x0 = _mm512_load_si512(rec), bias = _mm512_load_si512(rec + 128);
      if constexpr (kInt4) {
        const __m512i x1 = _mm512_load_si512(rec + 64);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m512i d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(bias, lo[r], x0), hi[r], x1);
          acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw[r], sx), acc[r][k]);
        }
      } else {
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m512i d = _mm512_dpbusd_epi32(bias, lo[r], x0);
          acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw[r], sx), acc[r][k]);
        }
      }
    }
  }
}

template <bool kInt4, bool kGroup32, int R, int T>
void tile(const Int8DotArgs& w, int64_t row, int64_t t0, const MatmulJob& job) {
  const Int8Activations& a = *w.a;
  const uint8_t* rows[R];
  const float* scales[R];
  const std::byte* records[T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    rows[r] = w.data + (row + r) * w.ld;
    scales[r] = w.scales + (row + r) * w.groups;
  }
#pragma GCC unroll 3
  for (int k = 0; k < T; ++k) records[k] = a.record(t0 + k, 0);
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int k = 0; k < T; ++k) acc[r][k] = _mm512_setzero_ps();
  const int64_t full = w.ld / 64;  // spans with all their bytes; a.spans - full is 0 or 1
  spans<kInt4, kGroup32, true>(w, rows, scales, records, 0, full, acc);
  if (full < a.spans) spans<kInt4, kGroup32, false>(w, rows, scales, records, full, a.spans, acc);
  // Outputs token-major, reduced by the sixteen-lane tree.
  constexpr int kOutputs = R * T;
  __m512 outputs[kOutputs];
#pragma GCC unroll 12
  for (int o = 0; o < kOutputs; ++o) outputs[o] = acc[o % R][o / R];
  float sums[(kOutputs + 7) / 8 * 8];
  sum_sixteen_lanes(outputs, sums);
#pragma GCC unroll 12
  for (int o = 0; o < kOutputs; ++o) {
    const int64_t r = row + o % R, t = t0 + o / R;
    job.y[t * job.w->rows + r] = job.bias ? sums[o] + job.bias[r] : sums[o];
  }
}

template <bool kInt4, bool kGroup32>
using TileFn = void (*)(const Int8DotArgs&, int64_t, int64_t, const MatmulJob&);

template <bool kInt4, bool kGroup32, int R>
constexpr TileFn<kInt4, kGroup32> tiles_of_rows[kMaxTokens] = {&tile<kInt4, kGroup32, R, 1>, &tile<kInt4, kGroup32, R, 2>,
                                                               &tile<kInt4, kGroup32, R, 3>};

template <bool kInt4, bool kGroup32>
TileFn<kInt4, kGroup32> tile_for(int rows, int tokens) {
  static constexpr const TileFn<kInt4, kGroup32>* table[kMaxRows] = {
      tiles_of_rows<kInt4, kGroup32, 1>, tiles_of_rows<kInt4, kGroup32, 2>, tiles_of_rows<kInt4, kGroup32, 3>,
      tiles_of_rows<kInt4, kGroup32, 4>};
  return table[rows - 1][tokens - 1];
}

template <bool kInt4, bool kGroup32>
void rows_with(const Int8DotArgs& w, const MatmulJob& job, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r += kMaxRows) {
    const int rows = int(std::min<int64_t>(kMaxRows, r1 - r));
    for (int64_t t = 0; t < job.m; t += kMaxTokens)
      tile_for<kInt4, kGroup32>(rows, int(std::min<int64_t>(kMaxTokens, job.m - t)))(w, r, t, job);
  }
}

template <bool kInt4>
void rows_with(const Int8DotArgs& w, const MatmulJob& job, int64_t r0, int64_t r1) {
  if (w.group_size == 32) return rows_with<kInt4, true>(w, job, r0, r1);
  rows_with<kInt4, false>(w, job, r0, r1);
}

}  // namespace

void quantise_block_avx512(const float* x, float* scale, int8_t* q) {
  const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
  constexpr int kNanOrInf = 0x01 | 0x80 | 0x08 | 0x10;  // quiet NaN, signalling NaN, +inf, -inf
  if (_mm512_fpclass_ps_mask(lo, kNanOrInf) | _mm512_fpclass_ps_mask(hi, kNanOrInf)) {
    *scale = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
  *scale = amax / 127.0f;
  if (amax == 0.0f) return;
  const __m512 inv = _mm512_set1_ps(127.0f / amax), round = _mm512_set1_ps(12582912.0f);  // 1.5 * 2^23, as the portable code
  const __m512i low = _mm512_set1_epi32(-127), high = _mm512_set1_epi32(127);
  const auto quantise = [&](__m512 v) {
    const __m512 r = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(v, inv), round), round);  // two roundings, no FMA
    return _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(_mm512_cvttps_epi32(r), low), high));
  };
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), quantise(lo));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), quantise(hi));
}

void rows_int8_dot_avx512(const MatmulJob& job, const Int8Activations& a, int64_t r0, int64_t r1) {
  const WeightMatrix& m = *job.w;
  const bool int4 = m.dtype == DType::kI4;
  const Int8DotArgs w{static_cast<const uint8_t*>(m.data), int4 ? m.cols / 2 : m.cols, m.scales, m.cols / m.group_size,
                      m.group_size, &a};
  if (int4) return rows_with<true>(w, job, r0, r1);
  rows_with<false>(w, job, r0, r1);
}

}  // namespace moe::cpu::detail

#pragma GCC diagnostic pop
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
