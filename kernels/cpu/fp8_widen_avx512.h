#pragma once
// 16 float8_e4m3fn bytes widened to exact f32 in a 512-bit register (internal to kernels/cpu):
// the 7 magnitude bits are placed under f32's exponent and mantissa and multiplied by 2^120
// (exact, e4m3's subnormals included), the sign moved to bit 31, 0x7F/0xFF made NaN. Include it
// inside an AVX-512 target region (matmul_avx512.cpp).
#include <immintrin.h>

#include <limits>

namespace moe::cpu::detail {

inline __m512 e4m3_widen16(__m128i bytes) {
  const __m512i c = _mm512_cvtepu8_epi32(bytes);
  const __m512i magnitude = _mm512_and_si512(c, _mm512_set1_epi32(0x7F));
  const __m512i bits = _mm512_or_si512(_mm512_slli_epi32(magnitude, 20),
                                       _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24));
  const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(0x1p120f));
  const __mmask16 nan = _mm512_cmpeq_epi32_mask(magnitude, _mm512_set1_epi32(0x7F));
  return _mm512_mask_blend_ps(nan, v, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
}

// 16 e4m3 bytes times `factor` = 2^120 x scale, NaN bytes apart (the caller checks for them):
// the 7 magnitude bits and the sign placed as f32 bits by one sign-extending widening, a shift and
// a mask (the sign's copies above bit 27 masked off), then one multiply. The bits are the exact
// value times 2^-120, so while 2^120 x scale is itself exact (|scale| < 2^8, or not finite) the
// product is the exact value times the scale rounded once: e4m3_widen16(bytes) x scale's bits.
inline __m512 e4m3_times16(__m128i bytes, __m512 factor) {
  const __m512i bits =
      _mm512_and_si512(_mm512_slli_epi32(_mm512_cvtepi8_epi32(bytes), 20), _mm512_set1_epi32(int32_t(0x87F00000u)));
  return _mm512_mul_ps(_mm512_castsi512_ps(bits), factor);
}

// Whether any of 32 bytes is an e4m3 NaN (0x7F or 0xFF).
inline bool e4m3_any_nan32(__m256i bytes) {
  return _mm256_cmpeq_epi8_mask(_mm256_or_si256(bytes, _mm256_set1_epi8(int8_t(0x80))), _mm256_set1_epi8(-1)) != 0;
}

}  // namespace moe::cpu::detail
