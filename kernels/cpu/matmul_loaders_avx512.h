#pragma once
// The AVX-512 matmul's weight loaders (internal to matmul_avx512.cpp): each reads a 32-column
// block of one row as two f32 registers in its format's lane layout (matmul_layout_avx512.h),
// widened exactly as the portable path widens it; load_tail reads only the n valid columns.
// Include it inside an AVX-512 target region: its code is AVX-512.
#include <immintrin.h>

#include <array>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/fp8_widen_avx512.h"
#include "kernels/cpu/matmul_layout_avx512.h"

namespace moe::cpu::detail {

// Masks of the valid slots of each register for a block holding n < 32 valid columns.
template <Layout L>
inline void tail_masks(int n, __mmask16& k0, __mmask16& k1) {
  if constexpr (L == Layout::kNatural) {
    k0 = __mmask16(n >= 16 ? 0xFFFF : (1u << n) - 1);
    k1 = __mmask16(n > 16 ? (1u << (n - 16)) - 1 : 0);
  } else if constexpr (L == Layout::kPaired) {
    k0 = __mmask16((1u << ((n + 1) / 2)) - 1);
    k1 = __mmask16((1u << (n / 2)) - 1);
  } else {
    uint32_t bits = 0;
    for (int c = 0; c < n; ++c) bits |= 1u << slot_of(L, c);
    k0 = __mmask16(bits & 0xFFFF);
    k1 = __mmask16(bits >> 16);
  }
}

inline __mmask32 first_bits32(int n) { return n >= 32 ? ~__mmask32(0) : (__mmask32(1) << n) - 1; }

// ---- weight loaders: a 32-column block of one row as two registers in the loader's layout;
// load_tail reads only the n valid columns (the rest come back as zero).

// Where block b of row r starts, for rows of T elements `ld` apart and blocks of kBlockElements.
template <class T, int kBlockElements = kLanes>
struct RowBlocks {
  using Element = T;
  static constexpr bool kGrouped = false;  // quant_tile's rows: each block in one scale group
  static constexpr int kElements = kBlockElements;
  static constexpr int kBlockBytes = kBlockElements * int(sizeof(T));
  const T* base;
  int64_t ld;
  const T* at(int64_t r, int64_t b) const { return base + r * ld + b * kBlockElements; }
  const char* address(int64_t r, int64_t b) const { return reinterpret_cast<const char*>(at(r, b)); }
};

struct F32Rows : RowBlocks<float> {
  static constexpr Layout kLayout = Layout::kNatural;
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    const float* p = at(r, b);
    a = _mm512_loadu_ps(p);
    c = _mm512_loadu_ps(p + 16);
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    __mmask16 k0, k1;
    tail_masks<kLayout>(n, k0, k1);
    const float* p = at(r, b);
    a = _mm512_maskz_loadu_ps(k0, p);
    c = _mm512_maskz_loadu_ps(k1, p + 16);
  }
};

struct F16Rows : RowBlocks<uint16_t> {
  static constexpr Layout kLayout = Layout::kNatural;
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    const uint16_t* p = at(r, b);
    a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    c = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    __mmask16 k0, k1;
    tail_masks<kLayout>(n, k0, k1);
    const uint16_t* p = at(r, b);
    a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k0, p));
    c = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k1, p + 16));
  }
};

// bf16 is the high half of an f32: the even element of a 32-bit pair shifts up, the odd one
// is masked in place.
struct Bf16Rows : RowBlocks<uint16_t> {
  static constexpr Layout kLayout = Layout::kPaired;
  static void split(__m512i d, __m512& a, __m512& c) {
    a = _mm512_castsi512_ps(_mm512_slli_epi32(d, 16));
    c = _mm512_castsi512_ps(_mm512_and_si512(d, _mm512_set1_epi32(int(0xFFFF0000u))));
  }
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    split(_mm512_loadu_si512(at(r, b)), a, c);
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    split(_mm512_maskz_loadu_epi16(first_bits32(n), at(r, b)), a, c);
  }
};

// Scales of an int8/int4 row: per block when every 32-column block lies in one group, else
// per 8-column chunk (group sizes are multiples of 8).
struct RowScales {
  const float* scales;
  int64_t groups_per_row;
  const int32_t* groups;  // block -> group, or chunk -> group
  int64_t group_blocks;   // blocks a group (when every block lies in one)
  const float* of(int64_t r) const { return scales + r * groups_per_row; }
};

template <bool kUniform>
struct I8Rows : RowBlocks<int8_t> {
  static constexpr Layout kLayout = Layout::kNatural;
  static constexpr bool kGrouped = kUniform;
  RowScales s;
  void scales(int64_t r, int64_t b, __m512& sa, __m512& sc) const {
    const float* row = s.of(r);
    if constexpr (kUniform) {
      sa = sc = _mm512_set1_ps(row[s.groups[b]]);
    } else {  // chunk j of the block covers columns 8j..8j+7: two chunks a register
      const int32_t* g = s.groups + 4 * b;
      sa = _mm512_insertf32x8(_mm512_set1_ps(row[g[0]]), _mm256_set1_ps(row[g[1]]), 1);
      sc = _mm512_insertf32x8(_mm512_set1_ps(row[g[2]]), _mm256_set1_ps(row[g[3]]), 1);
    }
  }
  static __m512 widen(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }
  // For quant_tile: a group's factor (int8: the scale itself), then a block widened with it.
  static __m512 group_factor(float scale) { return _mm512_set1_ps(scale); }
  static void widen_block(const int8_t* p, __m512 scale, __m512& a, __m512& c) {
    a = _mm512_mul_ps(widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), scale);
    c = _mm512_mul_ps(widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))), scale);
  }
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    const int8_t* p = at(r, b);
    __m512 sa, sc;
    scales(r, b, sa, sc);
    a = _mm512_mul_ps(widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), sa);
    c = _mm512_mul_ps(widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))), sc);
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    __mmask16 k0, k1;
    tail_masks<kLayout>(n, k0, k1);
    const int8_t* p = at(r, b);
    __m512 sa, sc;
    scales(r, b, sa, sc);
    a = _mm512_mul_ps(widen(_mm_maskz_loadu_epi8(k0, p)), sa);
    c = _mm512_mul_ps(widen(_mm_maskz_loadu_epi8(k1, p + 16)), sc);
  }
};

// int4: byte j of a block holds columns 2j (low nibble) and 2j+1 (high). The block's 16 bytes
// go to every 128-bit quarter of a register (a broadcast load, no shuffle), and a variable
// shift brings slot j's nibble down: in the nibble layout slot j holds 32-bit word j % 4 of
// the block (columns 8 (j % 4) .. + 7), of which register 0 takes nibble j / 4 and register 1
// nibble 4 + j / 4. A nibble then indexes a 16-entry table of its value times the scale (the
// same product, rounded once, as q * scale), read by a permute that looks at an index's low 4
// bits only, so widening, sign and scale take one permute.
template <bool kUniform>
struct I4Rows : RowBlocks<uint8_t, kLanes / 2> {  // ld: bytes per row
  static constexpr Layout kLayout = Layout::kNibble;
  static constexpr bool kGrouped = kUniform;
  RowScales s;
  static __m512 values() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1); }
  static __m512i shifts0() { return _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12); }
  static __m512i shifts1() { return _mm512_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20, 24, 24, 24, 24, 28, 28, 28, 28); }
  static __m512i broadcast(__m128i bytes) { return _mm512_broadcast_i32x4(bytes); }
  // For quant_tile: a group's factor (the table of its scale), then a block widened with it.
  static __m512 group_factor(float scale) { return _mm512_mul_ps(values(), _mm512_set1_ps(scale)); }
  static void widen_block(const uint8_t* p, __m512 table, __m512& a, __m512& c) {
    const __m512i d = broadcast(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    a = _mm512_permutexvar_ps(_mm512_srlv_epi32(d, shifts0()), table);
    c = _mm512_permutexvar_ps(_mm512_srlv_epi32(d, shifts1()), table);
  }
  void widen(int64_t r, int64_t b, __m128i bytes, __m512& a, __m512& c) const {
    const __m512i d = broadcast(bytes);
    const __m512i i0 = _mm512_srlv_epi32(d, shifts0()), i1 = _mm512_srlv_epi32(d, shifts1());
    const float* row = s.of(r);
    if constexpr (kUniform) {
      const __m512 table = group_factor(row[s.groups[b]]);
      a = _mm512_permutexvar_ps(i0, table);
      c = _mm512_permutexvar_ps(i1, table);
    } else {  // slot j of either register holds word j % 4 of the block: chunk j % 4
      const int32_t* g = s.groups + 4 * b;
      const __m512 scale = _mm512_broadcast_f32x4(_mm_setr_ps(row[g[0]], row[g[1]], row[g[2]], row[g[3]]));
      a = _mm512_mul_ps(_mm512_permutexvar_ps(i0, values()), scale);
      c = _mm512_mul_ps(_mm512_permutexvar_ps(i1, values()), scale);
    }
  }
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    widen(r, b, _mm_loadu_si128(reinterpret_cast<const __m128i*>(at(r, b))), a, c);
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    widen(r, b, _mm_maskz_loadu_epi8(__mmask16((1u << (n / 2)) - 1), at(r, b)), a, c);
  }
};

// MXFP4 (mxfp4.h): a 32-column block is one e2m1 block, its 16 bytes in int4's nibble order
// (column 2j low, 2j+1 high), so it widens as int4 does, by one permute of a 16-entry table:
// the e2m1 values times the block's e8m0 scale 2^(e - 127), each product the portable path's
// (a power of two: exact, subnormal for e == 0; 0xFF NaN).
struct Mxfp4Rows : RowBlocks<uint8_t, kLanes / 2> {  // ld: bytes per row
  static constexpr Layout kLayout = Layout::kNibble;
  const uint8_t* exponents;  // [rows, blocks]
  int64_t blocks_per_row;
  static __m512 values() {
    return _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f);
  }
  // Every e8m0 byte's scale as f32 bits, looked up rather than branched on a block a row.
  static constexpr std::array<uint32_t, 256> kScaleBits = [] {
    std::array<uint32_t, 256> bits{};
    for (uint32_t e = 0; e < 256; ++e) bits[e] = e == 0xFF ? 0x7FC00000u : e == 0 ? 0x00400000u : e << 23;
    return bits;
  }();
  __m512 table(int64_t r, int64_t b) const {
    const uint32_t bits = kScaleBits[exponents[r * blocks_per_row + b]];
    return _mm512_mul_ps(values(), _mm512_castsi512_ps(_mm512_set1_epi32(int32_t(bits))));
  }
  void widen(int64_t r, int64_t b, __m128i bytes, __m512& a, __m512& c) const {
    const __m512i d = I4Rows<true>::broadcast(bytes);
    const __m512 t = table(r, b);
    a = _mm512_permutexvar_ps(_mm512_srlv_epi32(d, I4Rows<true>::shifts0()), t);
    c = _mm512_permutexvar_ps(_mm512_srlv_epi32(d, I4Rows<true>::shifts1()), t);
  }
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    widen(r, b, _mm_loadu_si128(reinterpret_cast<const __m128i*>(at(r, b))), a, c);
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    widen(r, b, _mm_maskz_loadu_epi8(__mmask16((1u << (n / 2)) - 1), at(r, b)), a, c);
  }
};

// FP8 (e4m3fn) with block scales: a 32-column block lies in one scale block (avx512_takes_fp8),
// whose scale multiplies each exact value once, as the portable path does. Folded, the scales
// carry the widening's 2^120 (prepare_avx512) and a register takes one multiply
// (e4m3_times16), a block with a NaN byte the two; unfolded (a scale of 2^8 or more), the two.
template <bool kFolded>
struct Fp8Rows : RowBlocks<uint8_t> {
  static constexpr Layout kLayout = Layout::kNatural;
  const float* scales;        // fp8_scales
  const int64_t* scale_rows;  // per row
  const int32_t* columns;     // per block: its scale's column
  float scale(int64_t r, int64_t b) const { return scales[scale_rows[r] + columns[b]]; }
  void widen(__m128i lo, __m128i hi, float s, bool nan, __m512& a, __m512& c) const {
    if constexpr (kFolded) {
      if (!nan) {
        const __m512 factor = _mm512_set1_ps(s);
        a = e4m3_times16(lo, factor);
        c = e4m3_times16(hi, factor);
        return;
      }
      s *= 0x1p-120f;  // the scale itself, exactly
    }
    a = _mm512_mul_ps(e4m3_widen16(lo), _mm512_set1_ps(s));
    c = _mm512_mul_ps(e4m3_widen16(hi), _mm512_set1_ps(s));
  }
  void load(int64_t r, int64_t b, __m512& a, __m512& c) const {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at(r, b)));
    widen(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1), scale(r, b), kFolded && e4m3_any_nan32(bytes), a, c);
  }
  void load_tail(int64_t r, int64_t b, int n, __m512& a, __m512& c) const {
    __mmask16 k0, k1;
    tail_masks<kLayout>(n, k0, k1);
    const uint8_t* p = at(r, b);
    const __m128i lo = _mm_maskz_loadu_epi8(k0, p), hi = _mm_maskz_loadu_epi8(k1, p + 16);
    widen(lo, hi, scale(r, b), kFolded && e4m3_any_nan32(_mm256_setr_m128i(lo, hi)), a, c);
  }
};

}  // namespace moe::cpu::detail
