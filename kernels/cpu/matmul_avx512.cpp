// The AVX-512 matmul path: register tiles of up to 4 weight rows x 3 tokens, each output's 32
// lanes held in two 16-wide registers. Decode (up to 3 tokens) widens weights in registers as
// it streams them; larger batches first widen 8 rows into an f32 panel that stays in cache
// while every token passes over it.
//
// Lane layouts: in the natural layout register 0 holds lanes 0..15 (columns c..c+15 of a
// 32-column block) and register 1 lanes 16..31. bf16, two elements to 32 bits, uses the paired
// layout instead: register 0 holds the block's even columns (lanes 0, 2, .., 30), register 1 its
// odd ones, which saves a shuffle per element. int4 uses the nibble layout, chosen so that a
// block's 16 bytes broadcast to every 128-bit quarter and one variable shift per register put
// each slot's nibble in its low bits (no byte-widening shuffle): slot j of register 0 holds
// column 8 (j % 4) + j / 4, of register 1 the column 4 further. Whatever the layout, each lane
// sums its own columns in increasing order with one fused multiply-add each; the lanes are put
// back in natural order before the fixed tree of matmul_paths.h.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/cpu/matmul_layout_avx512.h"
#include "kernels/cpu/matmul_paths.h"
#include "kernels/cpu/thread_pool.h"

namespace moe::cpu::detail {
namespace {

constexpr int kMaxRows = 4;    // weight rows in a register tile
constexpr int kMaxTokens = 3;  // tokens in a register tile

// Batches of this many tokens widen their weights once, into a panel; smaller ones stream them
// through the register tiles (3 rows x 3 tokens), which is faster up to where the panel's
// widening is shared by enough tokens (2 threads, weights from memory: bf16 up to 12 tokens
// 1.1-1.9x the panel, int4 up to 8, even at 12; int8's costlier widening pays from 8). FP8 and
// MXFP4 take int8's and int4's thresholds by the likeness of their widening, not measured.
int pack_from(DType dtype) {
  return dtype == DType::kI8 || dtype == DType::kF8E4M3 ? 8 : dtype == DType::kI4 || dtype == DType::kMxfp4 ? 12 : 14;
}

// Tokens [m, cols] into the lane layout: each 32-column block's slots 0-15 at block (block b
// at b * 32, or b * 16 when half-major), its slots 16-31 half_offset further; a tail block's
// slots past the columns are zero. In the AVX-512 region below.
void relayout_tokens(Layout layout, const float* x, int64_t m, int64_t cols, float* dst, int64_t stride, bool half_major,
                     int64_t half_offset);

}  // namespace

// Scalar, so outside the AVX-512 region below (whose code generation must not reach the
// standard library's templates this instantiates).
void prepare_avx512(const MatmulJob& job, AlignedFloats& storage, Avx512Input& input, ThreadPool& pool) {
  const WeightMatrix& w = *job.w;
  const int64_t padded = (w.cols + kLanes - 1) / kLanes * kLanes;
  if (w.dtype == DType::kI8 || w.dtype == DType::kI4) {
    const int64_t gs = w.group_size, last = w.cols / gs - 1;
    input.block_uniform = gs % kLanes == 0;
    const int64_t unit = input.block_uniform ? kLanes : 8;
    input.groups.resize(size_t(padded / unit));
    // Chunks past the columns (a tail block's) take the last group: read, then masked away.
    for (size_t i = 0; i < input.groups.size(); ++i) input.groups[i] = int32_t(std::min<int64_t>(int64_t(i) * unit / gs, last));
  }
  if (w.dtype == DType::kF8E4M3) {
    input.groups.resize(size_t(padded / kLanes));
    for (size_t b = 0; b < input.groups.size(); ++b)  // a tail block's columns past the end take its first's
      input.groups[b] = int32_t((int64_t(b) * kLanes + w.block_col0) / w.block_cols);
    input.scale_rows.resize(size_t(w.rows));  // a row walk, not a division a row (an lm head has 129 K rows)
    const int64_t first = w.block_row0 / w.block_rows;
    int64_t block = first, next = (block + 1) * w.block_rows - w.block_row0;
    for (int64_t r = 0; r < w.rows; ++r) {
      if (r == next) {
        ++block;
        next += w.block_rows;
      }
      input.scale_rows[size_t(r)] = (block - first) * w.block_stride;
    }
    // The grid rows under this matrix (a slice's too), their scales times 2^120 where that is
    // exact for all (|scale| < 2^8, or not finite: inf and NaN stay what they were).
    const float* scales = w.block_scales + first * w.block_stride;
    input.fp8_scales.assign(scales, scales + (block - first + 1) * w.block_stride);
    input.fp8_folded = std::none_of(input.fp8_scales.begin(), input.fp8_scales.end(),
                                    [](float s) { return std::fabs(s) >= 0x1p8f && std::isfinite(s); });
    if (input.fp8_folded)
      for (float& s : input.fp8_scales) s *= 0x1p120f;
  }
  if (layout_of(w.dtype) == Layout::kNatural && w.cols == padded && job.m < pack_from(w.dtype)) {  // already in layout
    input.x = job.x;
    input.stride = w.cols;
    input.half_offset = 16;
    return;
  }
  // Large batches go half-major (every block's slots 0-15, then its slots 16-31: the panel
  // multiplies one half at a time), each half a cache line more than a power of two apart.
  const bool halves = job.m >= pack_from(w.dtype);
  const int64_t half_offset = halves ? padded / 2 + 16 : 16;
  const int64_t stride = halves ? 2 * half_offset : padded;
  float* const prepared = storage.get(size_t(job.m * stride));
  const auto relayout = [&](int64_t t0, int64_t t1) {
    relayout_tokens(layout_of(w.dtype), job.x + t0 * w.cols, t1 - t0, w.cols, prepared + t0 * stride, stride, halves, half_offset);
  };
  if (job.m > 1 && job.m * w.cols >= (int64_t{1} << 15)) pool.parallel_for(job.m, relayout);
  else relayout(0, job.m);
  input.x = prepared;
  input.stride = stride;
  input.half_offset = half_offset;
}

bool avx512_takes_fp8(const MatmulJob& job) {
  const WeightMatrix& w = *job.w;
  return w.block_cols % kLanes == 0 && w.block_col0 % kLanes == 0;
}

}  // namespace moe::cpu::detail

// clang ignores GCC's target pragma; it takes the same features as an attribute on every function.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
#endif
// GCC 12's own AVX-512 headers pass undefined vectors as unused operands and then warn about
// them (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/lane_tree_avx512.h"  // inside the region: their code is AVX-512
#include "kernels/cpu/matmul_loaders_avx512.h"

namespace moe::cpu::detail {
namespace {

void relayout_tokens(Layout layout, const float* x, int64_t m, int64_t cols, float* dst, int64_t stride, bool half_major,
                     int64_t half_offset) {
  alignas(64) int32_t column_of[kLanes];  // slot -> column: a permutation of the block
  for (int c = 0; c < kLanes; ++c) column_of[slot_of(layout, c)] = c;
  const __m512i first = _mm512_load_si512(column_of), second = _mm512_load_si512(column_of + 16);
  for (int64_t t = 0; t < m; ++t) {
    const float* src = x + t * cols;
    float* row = dst + t * stride;
    for (int64_t c0 = 0; c0 < cols; c0 += kLanes) {
      const int n = int(std::min<int64_t>(kLanes, cols - c0));
      const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(n >= 16 ? 0xFFFF : (1u << n) - 1), src + c0);
      const __m512 hi = _mm512_maskz_loadu_ps(__mmask16(n >= 32 ? 0xFFFF : n > 16 ? (1u << (n - 16)) - 1 : 0), src + c0 + 16);
      float* block = row + (half_major ? c0 / 2 : c0);
      _mm512_storeu_ps(block, _mm512_permutex2var_ps(lo, first, hi));
      _mm512_storeu_ps(block + half_offset, _mm512_permutex2var_ps(lo, second, hi));
    }
  }
}

// ---- reduction: two registers of lanes (in layout L) to one sum, by the fixed tree, eight
// outputs at a time.

// v[i] = (l[i] + l[8+i]) + (l[16+i] + l[24+i]): the tree's first two levels.
template <Layout L>
inline __m256 quarter_sums(__m512 a, __m512 c) {
  if constexpr (L != Layout::kNatural) {  // back to natural: lane i comes from slot slot_of(L, i)
    const __m512i lo = _mm512_setr_epi32(slot_of(L, 0), slot_of(L, 1), slot_of(L, 2), slot_of(L, 3), slot_of(L, 4),
                                         slot_of(L, 5), slot_of(L, 6), slot_of(L, 7), slot_of(L, 8), slot_of(L, 9),
                                         slot_of(L, 10), slot_of(L, 11), slot_of(L, 12), slot_of(L, 13), slot_of(L, 14),
                                         slot_of(L, 15));
    const __m512i hi = _mm512_setr_epi32(slot_of(L, 16), slot_of(L, 17), slot_of(L, 18), slot_of(L, 19), slot_of(L, 20),
                                         slot_of(L, 21), slot_of(L, 22), slot_of(L, 23), slot_of(L, 24), slot_of(L, 25),
                                         slot_of(L, 26), slot_of(L, 27), slot_of(L, 28), slot_of(L, 29), slot_of(L, 30),
                                         slot_of(L, 31));
    const __m512 natural0 = _mm512_permutex2var_ps(a, lo, c), natural1 = _mm512_permutex2var_ps(a, hi, c);
    a = natural0;
    c = natural1;
  }
  const __m256 p = _mm256_add_ps(_mm512_extractf32x8_ps(a, 0), _mm512_extractf32x8_ps(a, 1));  // l[i] + l[8+i]
  const __m256 q = _mm256_add_ps(_mm512_extractf32x8_ps(c, 0), _mm512_extractf32x8_ps(c, 1));  // l[16+i] + l[24+i]
  return _mm256_add_ps(p, q);
}

// ---- the register tile: R rows (from `row` of the loader) x T tokens.

struct TileArgs {
  const float* x;  // the tile's first token, in the loader's layout
  int64_t x_stride;
  int64_t first_block, end_block;  // the whole blocks of this pass over the columns
  int tail;        // valid columns of the row's last, partial block, done by the last pass (0: none)
  float* y;        // output of the tile's first token and row
  int64_t y_stride;
  const float* bias;  // of the tile's first row, or null
};

// Keeps a register a register: stops the compiler from re-reading a value from memory at each
// use, which would double the loads of the panel tiles.
#define MOE_PIN(v) asm("" : "+v"(v))

// Weights streamed from memory are prefetched a tile ahead: while a tile reads block b of its
// rows, the next tile's rows' block b is asked for. A prefetch past the matrix's end is
// harmless (prefetches never fault).
template <class Rows>
constexpr int64_t kBlocksPerLine = Rows::kBlockBytes >= 64 ? 1 : 64 / Rows::kBlockBytes;
constexpr int64_t kAheadRows = 2 * kMaxRows;

// One block of weight registers (wa: the first 16 lanes, wc: the other 16) against each token
// of the tile: masked lanes keep their sums untouched (the tail; whole blocks pass all ones).
template <int R, int T>
inline void multiply_add_block(__m512 (&acc)[R][T][2], const __m512 (&wa)[R], const __m512 (&wc)[R], const TileArgs& t,
                               int64_t b, __mmask16 k0, __mmask16 k1) {
#pragma GCC unroll 4
  for (int k = 0; k < T; ++k) {
    const float* xk = t.x + k * t.x_stride + b * kLanes;
    const __m512 x0 = _mm512_loadu_ps(xk), x1 = _mm512_loadu_ps(xk + 16);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      acc[r][k][0] = _mm512_mask3_fmadd_ps(x0, wa[r], acc[r][k][0], k0);
      acc[r][k][1] = _mm512_mask3_fmadd_ps(x1, wc[r], acc[r][k][1], k1);
    }
  }
}

// A tile's outputs, in token-major order, reduced eight at a time by the fixed tree (the last
// group padded with zeros), plus the bias.
template <Layout L, int R, int T>
inline void store_tile(__m512 (&acc)[R][T][2], const TileArgs& t) {
  constexpr int kOutputs = R * T, kGroups = (kOutputs + 7) / 8;
  __m256 v[kGroups * 8];
#pragma GCC unroll 12
  for (int o = 0; o < kGroups * 8; ++o)
    v[o] = o < kOutputs ? quarter_sums<L>(acc[o % R][o / R][0], acc[o % R][o / R][1]) : _mm256_setzero_ps();
  alignas(32) float sums[kGroups * 8];
#pragma GCC unroll 2
  for (int g = 0; g < kGroups; ++g) _mm256_store_ps(sums + 8 * g, finish_tree8(v + 8 * g));
#pragma GCC unroll 12
  for (int o = 0; o < kOutputs; ++o) {
    const int r = o % R, k = o / R;
    t.y[k * t.y_stride + r] = t.bias ? sums[o] + t.bias[r] : sums[o];
  }
}

template <int R, int T, class Rows>
void any_tile(const Rows& w, int64_t row, const TileArgs& t) {
  __m512 acc[R][T][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < T; ++k) acc[r][k][0] = acc[r][k][1] = _mm512_setzero_ps();
  for (int64_t b = t.first_block; b < t.end_block; ++b) {
    if (b % kBlocksPerLine<Rows> == 0)  // ask for the next tile's weights
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int off = 0; off < Rows::kBlockBytes; off += 64) _mm_prefetch(w.address(row + 2 * R + r, b) + off, _MM_HINT_T1);
    __m512 wa[R], wc[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) w.load(row + r, b, wa[r], wc[r]);
    multiply_add_block<R, T>(acc, wa, wc, t, b, 0xFFFF, 0xFFFF);
  }
  if (t.tail > 0) {  // masked: lanes past the columns keep their sums untouched
    const int64_t b = t.end_block;
    __mmask16 k0, k1;
    tail_masks<Rows::kLayout>(t.tail, k0, k1);
    __m512 wa[R], wc[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) w.load_tail(row + r, b, t.tail, wa[r], wc[r]);
    multiply_add_block<R, T>(acc, wa, wc, t, b, k0, k1);
  }
  store_tile<Rows::kLayout, R, T>(acc, t);
}

// One block of R rows, each widened with its group's factor, against every token of the tile.
template <int R, int T, class Rows>
[[gnu::always_inline]] inline void quant_block(__m512 (&acc)[R][T][2], const typename Rows::Element* p, int64_t ld,
                                               const __m512 (&factor)[R], const float* x, int64_t x_stride) {
  __m512 wa[R], wc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) Rows::widen_block(p + r * ld, factor[r], wa[r], wc[r]);
#pragma GCC unroll 4
  for (int k = 0; k < T; ++k) {
    const float* xk = x + k * x_stride;
    __m512 x0 = _mm512_loadu_ps(xk), x1 = _mm512_loadu_ps(xk + 16);
    if constexpr (R > 1) {  // loaded once for the R rows, not folded into each multiply-add
      MOE_PIN(x0);
      MOE_PIN(x1);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      acc[r][k][0] = _mm512_fmadd_ps(x0, wa[r], acc[r][k][0]);
      acc[r][k][1] = _mm512_fmadd_ps(x1, wc[r], acc[r][k][1]);
    }
  }
}

// The streamed tile of int8/int4 rows in groups of 32 columns (a block a group, no tail): the
// same sums as `any_tile`, with addressing a compiler keeps in registers. The rows, their scales and
// the activations are walked by pointers, a line of each row a step; each row's scale (int4: its
// table) is fetched once a block, and the weights and the scales of the rows kAheadRows further
// are asked for as the tile goes (the hardware's prefetchers alone get half the bandwidth here).
template <int R, int T, class Rows>
void quant_tile(const Rows& w, int64_t row, const TileArgs& t) {
  using E = typename Rows::Element;
  __m512 acc[R][T][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < T; ++k) acc[r][k][0] = acc[r][k][1] = _mm512_setzero_ps();
  const int64_t ld = w.ld, scale_ld = w.s.groups_per_row;
  const E* p = w.at(row, t.first_block);
  const float* scale = w.s.of(row) + t.first_block;
  const float* x = t.x + t.first_block * kLanes;
  const auto ask_rows = [&](const E* at) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(at + (kAheadRows + r) * ld), _MM_HINT_T1);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(at + r * ld) + 128, _MM_HINT_T0);  // L1: two steps on
  };
  const auto ask_scales = [&](const float* at) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(at + (kAheadRows + r) * scale_ld), _MM_HINT_T1);
  };
  constexpr int kLine = int(kBlocksPerLine<Rows>);  // blocks a step: a line of each row
  int64_t b = t.first_block;
  for (; b + kLine <= t.end_block; b += kLine) {
    ask_rows(p);
    ask_scales(scale);
#pragma GCC unroll 4
    for (int i = 0; i < kLine; ++i, p += Rows::kElements, x += kLanes, ++scale) {
      __m512 factor[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) factor[r] = Rows::group_factor(scale[r * scale_ld]);
      quant_block<R, T, Rows>(acc, p, ld, factor, x, t.x_stride);
    }
  }
  for (; b < t.end_block; ++b, p += Rows::kElements, x += kLanes, ++scale) {
    __m512 factor[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) factor[r] = Rows::group_factor(scale[r * scale_ld]);
    quant_block<R, T, Rows>(acc, p, ld, factor, x, t.x_stride);
  }
  store_tile<Rows::kLayout, R, T>(acc, t);
}

template <int R, int T, class Rows>
void tile(const Rows& w, int64_t row, const TileArgs& t) {
  if constexpr (Rows::kGrouped) {  // streamed: never in passes
    if (w.s.group_blocks == 1) return quant_tile<R, T>(w, row, t);
  }
  any_tile<R, T>(w, row, t);
}

template <class Rows>
using TileFn = void (*)(const Rows&, int64_t, const TileArgs&);

template <class Rows, int R, int... Ts>
constexpr auto row_of_tiles(std::integer_sequence<int, Ts...>) {
  return std::array<TileFn<Rows>, sizeof...(Ts)>{&tile<R, Ts + 1, Rows>...};
}

template <class Rows, int... Rs>
constexpr auto tile_table(std::integer_sequence<int, Rs...>) {
  return std::array{row_of_tiles<Rows, Rs + 1>(std::make_integer_sequence<int, kMaxTokens>{})...};
}

// The tile for r rows (1..kMaxRows) and k tokens (1..kMaxTokens).
template <class Rows>
TileFn<Rows> tile_for(int r, int k) {
  static constexpr auto table = tile_table<Rows>(std::make_integer_sequence<int, kMaxRows>{});
  return table[size_t(r - 1)][size_t(k - 1)];
}

// Rows of a small batch: weights widened in registers as they stream past. A tile of rows meets
// every tile of tokens before the next rows are read, so the weights come from memory once and
// from L1 for the other tokens; with 3-token tiles a tile has 3 rows, to stay within the 32
// registers.
template <class Rows>
void rows_direct(const Rows& w, const MatmulJob& job, const Avx512Input& in, int64_t r0, int64_t r1) {
  const WeightMatrix& m = *job.w;
  const int64_t full = m.cols / kLanes;
  const int tail = int(m.cols % kLanes);
  const int step = job.m >= kMaxTokens ? 3 : kMaxRows;
  for (int64_t r = r0; r < r1; r += step) {
    const int rows = int(std::min<int64_t>(step, r1 - r));
    for (int64_t t0 = 0; t0 < job.m; t0 += kMaxTokens) {
      const int tokens = int(std::min<int64_t>(kMaxTokens, job.m - t0));
      const TileArgs a{in.x + t0 * in.stride, in.stride, 0, full, tail, job.y + t0 * m.rows + r, m.rows, job.bias ? job.bias + r : nullptr};
      tile_for<Rows>(rows, tokens)(w, r, a);
    }
  }
}

// Rows of a large batch. A block's two registers (slots 0-15 and 16-31 of its layout) are
// independent sums, so the batch path does one after the other: a register tile then holds one
// register per output, 8 rows x 3 tokens, and each token's register meets 8 rows (8 multiply-adds
// for each line of tokens read from L2). Each group of kPanelRows rows is widened once into an
// f32 panel, half-major (the rows' first registers, then their second), a pass of kPassBlocks
// blocks at a time, so that the half being multiplied (16 KiB) stays in L1 while every tile of
// tokens streams past it. Sums carry between passes and halves in a per-thread buffer; the last
// pass of the second half reduces both by the fixed tree.
constexpr int kPanelRows = 8;
constexpr int kPanelTokens = 3;
constexpr int64_t kPassBlocks = 32;  // 1024 columns

struct PanelTileArgs {
  const float* w;  // the tile's first row in this half of the panel
  int64_t w_ld;
  const float* x;  // the tile's first token, this half of it, at the pass's first block
  int64_t x_stride;
  int64_t blocks;   // whole blocks of this pass
  int tail;         // the last pass: valid columns of the partial block after them (0: none)
  int half;         // 0: slots 0-15 of each block, 1: slots 16-31
  bool first_pass, last_pass;
  __m512* sums;        // this tile's [R x T] sums of this half, kept between passes
  const __m512* other;  // the second half's last pass: the first half's sums
  float* y;
  int64_t y_stride;
  const float* bias;
};

template <Layout L, int R, int T>
void panel_tile(const PanelTileArgs& t) {
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < T; ++k) acc[r][k] = t.first_pass ? _mm512_setzero_ps() : t.sums[r * T + k];
  const float* w = t.w;
  const float* x = t.x;
  for (int64_t b = 0; b < t.blocks; ++b, w += 16, x += 16) {
    __m512 xv[T];
#pragma GCC unroll 4
    for (int k = 0; k < T; ++k) {
      xv[k] = _mm512_loadu_ps(x + k * t.x_stride);
      MOE_PIN(xv[k]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 wv = _mm512_load_ps(w + r * t.w_ld);
      MOE_PIN(wv);
#pragma GCC unroll 4
      for (int k = 0; k < T; ++k) acc[r][k] = _mm512_fmadd_ps(xv[k], wv, acc[r][k]);
    }
  }
  if (t.last_pass && t.tail > 0) {  // masked: slots past the columns keep their sums untouched
    __mmask16 k0, k1;
    tail_masks<L>(t.tail, k0, k1);
    const __mmask16 mask = t.half == 0 ? k0 : k1;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 wv = _mm512_load_ps(w + r * t.w_ld);
#pragma GCC unroll 4
      for (int k = 0; k < T; ++k) acc[r][k] = _mm512_mask3_fmadd_ps(_mm512_loadu_ps(x + k * t.x_stride), wv, acc[r][k], mask);
    }
  }
  if (!t.last_pass || t.half == 0) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int k = 0; k < T; ++k) t.sums[r * T + k] = acc[r][k];
    return;
  }
  __m512 both[R][T][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < T; ++k) {
      both[r][k][0] = t.other[r * T + k];
      both[r][k][1] = acc[r][k];
    }
  store_tile<L, R, T>(both, TileArgs{nullptr, 0, 0, 0, 0, t.y, t.y_stride, t.bias});
}

template <Layout L>
using PanelTileFn = void (*)(const PanelTileArgs&);

template <Layout L, int R, int... Ts>
constexpr auto panel_row_of_tiles(std::integer_sequence<int, Ts...>) {
  return std::array<PanelTileFn<L>, sizeof...(Ts)>{&panel_tile<L, R, Ts + 1>...};
}

template <Layout L, int... Rs>
constexpr auto panel_tile_table(std::integer_sequence<int, Rs...>) {
  return std::array{panel_row_of_tiles<L, Rs + 1>(std::make_integer_sequence<int, kPanelTokens>{})...};
}

template <Layout L>
PanelTileFn<L> panel_tile_for(int r, int k) {
  static constexpr auto table = panel_tile_table<L>(std::make_integer_sequence<int, kPanelRows>{});
  return table[size_t(r - 1)][size_t(k - 1)];
}

// Rows [r, r + rows) of blocks [b0, b1) widened into the panel: half h of row i's block b at
// panel + h * half_ld + i * ld + (b - b0) * 16.
template <class Rows>
void widen_panel(const Rows& w, int64_t r, int rows, int64_t b0, int64_t b1, int64_t full, int tail, float* panel, int64_t ld,
                 int64_t half_ld) {
  const bool last = b1 == full + (tail > 0);
  const int64_t whole_end = std::min(b1, full);
  for (int i = 0; i < rows; ++i) {
    float* p0 = panel + i * ld - b0 * 16;
    float* p1 = p0 + half_ld;
    for (int64_t b = b0; b < whole_end; ++b) {
      __m512 a, c;
      w.load(r + i, b, a, c);
      _mm512_store_ps(p0 + b * 16, a);
      _mm512_store_ps(p1 + b * 16, c);
    }
    if (last && tail > 0) {
      __m512 a, c;
      w.load_tail(r + i, full, tail, a, c);
      _mm512_store_ps(p0 + full * 16, a);
      _mm512_store_ps(p1 + full * 16, c);
    }
  }
}

template <class Rows>
void rows_packed(const Rows& w, const MatmulJob& job, const Avx512Input& in, int64_t r0, int64_t r1, int64_t t_begin,
                 int64_t t_end) {
  constexpr Layout L = Rows::kLayout;
  const WeightMatrix& m = *job.w;
  const int64_t full = m.cols / kLanes;
  const int tail = int(m.cols % kLanes);
  const int64_t blocks = full + (tail > 0);
  const int64_t ld = std::min(blocks, kPassBlocks) * 16 + 16;  // rows a line apart in the cache sets, not 1 KiB
  const int64_t half_ld = kPanelRows * ld;
  const int64_t tiles = (t_end - t_begin + kPanelTokens - 1) / kPanelTokens;
  const bool pairs_at_end = (t_end - t_begin) % kPanelTokens == 1 && t_end - t_begin > kPanelTokens;
  constexpr int64_t kTileSums = kPanelRows * kPanelTokens;
  thread_local AlignedFloats panel_scratch, sums_scratch;
  float* const panel = panel_scratch.get(size_t(2 * half_ld));
  auto* const sums = reinterpret_cast<__m512*>(sums_scratch.get(size_t(tiles * 2 * kTileSums * 16)));
  for (int64_t r = r0; r < r1; r += kPanelRows) {
    const int rows = int(std::min<int64_t>(kPanelRows, r1 - r));
    for (int64_t b0 = 0; b0 < blocks; b0 += kPassBlocks) {
      const int64_t b1 = std::min(blocks, b0 + kPassBlocks);
      const bool last = b1 == blocks;
      widen_panel(w, r, rows, b0, b1, full, tail, panel, ld, half_ld);
      const int64_t next_r = last ? r + kPanelRows : r, next_b0 = last ? 0 : b1;
      const int64_t next_row_lines = ((std::min(blocks, next_b0 + kPassBlocks) - next_b0) * Rows::kBlockBytes + 63) / 64;
      const int64_t next_lines = next_r < r1 ? kPanelRows * next_row_lines : 0;
      for (int h = 0; h < 2; ++h)
        for (int64_t ti = 0; ti < tiles; ++ti) {
          int64_t t0 = t_begin + ti * kPanelTokens;
          int tokens = int(std::min<int64_t>(kPanelTokens, t_end - t0));
          if (pairs_at_end && ti >= tiles - 2) {  // 3k + 1 tokens: the last four as two pairs, not 3 + 1
            t0 = t_begin + (tiles - 2) * kPanelTokens + (ti - (tiles - 2)) * 2;
            tokens = 2;
          }
          const PanelTileArgs a{panel + h * half_ld, ld, in.x + t0 * in.stride + h * in.half_offset + b0 * 16, in.stride,
                                std::min(b1, full) - b0, last ? tail : 0, h, b0 == 0, last,
                                sums + (ti * 2 + h) * kTileSums, sums + ti * 2 * kTileSums,
                                job.y + t0 * m.rows + r, m.rows, job.bias ? job.bias + r : nullptr};
          panel_tile_for<L>(rows, tokens)(a);
          // Each tile asks for its share of the lines widened next (these rows' next pass, or
          // the next rows' first): spread out, the requests find free miss buffers, where a
          // burst of them during the widening was partly dropped (13% slower from memory).
          // One division a call, not one a line (perf: a divide a line cost ~3% of a batch-64 product).
          const int64_t call = h * tiles + ti, calls = 2 * tiles;
          const int64_t l0 = next_lines * call / calls, l1 = next_lines * (call + 1) / calls;
          if (l0 < l1) {
            int64_t row = next_r + l0 / next_row_lines, line = l0 % next_row_lines;
            const char* p = w.address(row, next_b0) + line * 64;
            for (int64_t l = l0; l < l1; ++l) {
              _mm_prefetch(p, _MM_HINT_T1);
              if (++line < next_row_lines) {
                p += 64;
              } else {
                line = 0;
                p = w.address(++row, next_b0);
              }
            }
          }
        }
    }
  }
}

// Tokens a panel pass reads stay in L2 across panels: large batches go a slice of tokens at a
// time (each slice widens the weights again, a small cost beside its multiply-adds).
constexpr int64_t kTokenSliceBytes = 1 << 20;

template <class Rows>
void rows_with(const Rows& w, const MatmulJob& job, const Avx512Input& in, int64_t r0, int64_t r1) {
  if (job.m >= pack_from(job.w->dtype)) {
    const int64_t slice = std::max<int64_t>(kPanelTokens, kTokenSliceBytes / (in.stride * 4) / kPanelTokens * kPanelTokens);
    for (int64_t t0 = 0; t0 < job.m; t0 += slice) rows_packed(w, job, in, r0, r1, t0, std::min(job.m, t0 + slice));
  } else {
    rows_direct(w, job, in, r0, r1);
  }
}

}  // namespace

void rows_avx512(const MatmulJob& job, const Avx512Input& in, int64_t r0, int64_t r1) {
  const WeightMatrix& w = *job.w;
  switch (w.dtype) {
    case DType::kF32: return rows_with(F32Rows{{static_cast<const float*>(w.data), w.stride()}}, job, in, r0, r1);
    case DType::kF16: return rows_with(F16Rows{{static_cast<const uint16_t*>(w.data), w.stride()}}, job, in, r0, r1);
    case DType::kBF16: return rows_with(Bf16Rows{{static_cast<const uint16_t*>(w.data), w.stride()}}, job, in, r0, r1);
    case DType::kI8: {
      const RowScales s{w.scales, w.cols / w.group_size, in.groups.data(), w.group_size / kLanes};
      const auto* base = static_cast<const int8_t*>(w.data);
      if (in.block_uniform) return rows_with(I8Rows<true>{{base, w.cols}, s}, job, in, r0, r1);
      return rows_with(I8Rows<false>{{base, w.cols}, s}, job, in, r0, r1);
    }
    case DType::kI4: {
      const RowScales s{w.scales, w.cols / w.group_size, in.groups.data(), w.group_size / kLanes};
      const auto* base = static_cast<const uint8_t*>(w.data);
      if (in.block_uniform) return rows_with(I4Rows<true>{{base, w.cols / 2}, s}, job, in, r0, r1);
      return rows_with(I4Rows<false>{{base, w.cols / 2}, s}, job, in, r0, r1);
    }
    case DType::kMxfp4:
      return rows_with(Mxfp4Rows{{static_cast<const uint8_t*>(w.data), w.cols / 2}, w.exponents, w.cols / kLanes}, job, in, r0, r1);
    case DType::kF8E4M3:
    {
      const RowBlocks<uint8_t> bytes{static_cast<const uint8_t*>(w.data), w.stride()};
      if (in.fp8_folded)
        return rows_with(Fp8Rows<true>{bytes, in.fp8_scales.data(), in.scale_rows.data(), in.groups.data()}, job, in, r0, r1);
      return rows_with(Fp8Rows<false>{bytes, in.fp8_scales.data(), in.scale_rows.data(), in.groups.data()}, job, in, r0, r1);
    }
    default: return;
  }
}

}  // namespace moe::cpu::detail

#pragma GCC diagnostic pop
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
