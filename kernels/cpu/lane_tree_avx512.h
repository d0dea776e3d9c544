#pragma once
// The last levels of the matmul's fixed lane tree (matmul_paths.h) for eight outputs at once, in
// AVX: included inside an AVX-512 target region (matmul_avx512.cpp and the int8- and
// bf16-activation modes' vector paths).
#include <immintrin.h>

namespace moe::cpu::detail {

// v[j]: output j's eight partial sums. out[j] = ((v_j0 + v_j1) + (v_j2 + v_j3)) +
// ((v_j4 + v_j5) + (v_j6 + v_j7)), by two rounds of pairwise adds and one of halves.
inline __m256 finish_tree8(const __m256 v[8]) {
  const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));  // outputs 0-3: left | right
  const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));  // outputs 4-7
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

// Sixteen lanes of each of N registers to N sums, matmul_paths.h's reduce_sixteen: (l[i] +
// l[8 + i]), then the eight-lane tree, eight registers at a time. `sums` holds N rounded up to 8.
template <int N>
inline void sum_sixteen_lanes(const __m512 (&l)[N], float* sums) {
  constexpr int kGroups = (N + 7) / 8;
  __m256 v[kGroups * 8];
#pragma GCC unroll 24
  for (int o = 0; o < kGroups * 8; ++o)
    v[o] = o < N ? _mm256_add_ps(_mm512_castps512_ps256(l[o]), _mm512_extractf32x8_ps(l[o], 1)) : _mm256_setzero_ps();
#pragma GCC unroll 3
  for (int g = 0; g < kGroups; ++g) _mm256_storeu_ps(sums + 8 * g, finish_tree8(v + 8 * g));
}

}  // namespace moe::cpu::detail
