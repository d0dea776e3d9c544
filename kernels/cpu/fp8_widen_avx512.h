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

}  // namespace moe::cpu::detail
