#pragma once
// The last levels of the matmul's fixed lane tree (matmul_paths.h) for eight outputs at once, in
// AVX: included inside an AVX-512 target region (matmul_avx512.cpp, matmul_int8_dot_avx512.cpp).
#include <immintrin.h>

namespace moe::cpu::detail {

// v[j]: output j's eight partial sums. out[j] = ((v_j0 + v_j1) + (v_j2 + v_j3)) +
// ((v_j4 + v_j5) + (v_j6 + v_j7)), by two rounds of pairwise adds and one of halves.
inline __m256 finish_tree8(const __m256 v[8]) {
  const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));  // outputs 0-3: left | right
  const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));  // outputs 4-7
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

}  // namespace moe::cpu::detail
