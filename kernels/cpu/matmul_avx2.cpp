// The AVX2 matmul path: one weight row at a time against pairs of tokens, the 32 lanes in four
// 8-wide registers, weights widened in registers as they stream past.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu::detail {
namespace {

constexpr int kTokenBlock = 2;  // tokens that share one pass over a weight row

__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const WeightMatrix& w, int64_t row, int64_t c) {
  const int64_t i = row * w.stride() + c;
  switch (w.dtype) {
    case DType::kF32: return _mm256_loadu_ps(static_cast<const float*>(w.data) + i);
    case DType::kBF16: {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w.data) + i));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case DType::kF16: {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w.data) + i));
      return _mm256_cvtph_ps(h);
    }
    case DType::kI8: {
      int64_t q8;
      std::memcpy(&q8, static_cast<const int8_t*>(w.data) + i, 8);
      const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(q8)));
      return _mm256_mul_ps(q, _mm256_set1_ps(w.scales[i / w.group_size]));
    }
    case DType::kI4: {
      uint32_t packed;
      std::memcpy(&packed, static_cast<const uint8_t*>(w.data) + i / 2, 4);
      const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
      __m256i v = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(packed)), shifts), _mm256_set1_epi32(0xF));
      v = _mm256_sub_epi32(_mm256_xor_si256(v, _mm256_set1_epi32(8)), _mm256_set1_epi32(8));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(w.scales[i / w.group_size]));
    }
    default: return _mm256_setzero_ps();
  }
}

}  // namespace

__attribute__((target("avx2,fma,f16c"))) void rows_avx2(const MatmulJob& job, int64_t r0, int64_t r1) {
  const WeightMatrix& w = *job.w;
  const float* x = job.x;
  const int64_t m = job.m;
  const int64_t full = w.cols / kLanes * kLanes;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t0 = 0; t0 < m; t0 += kTokenBlock) {
      const int64_t tn = std::min<int64_t>(kTokenBlock, m - t0);
      __m256 acc[kTokenBlock][4];
      for (auto& a : acc)
        for (auto& v : a) v = _mm256_setzero_ps();
      for (int64_t c = 0; c < full; c += kLanes) {
        const __m256 w0 = load8(w, r, c), w1 = load8(w, r, c + 8), w2 = load8(w, r, c + 16), w3 = load8(w, r, c + 24);
        for (int64_t t = 0; t < tn; ++t) {
          const float* xt = x + (t0 + t) * w.cols + c;
          acc[t][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xt), w0, acc[t][0]);
          acc[t][1] = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 8), w1, acc[t][1]);
          acc[t][2] = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 16), w2, acc[t][2]);
          acc[t][3] = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 24), w3, acc[t][3]);
        }
      }
      for (int64_t t = 0; t < tn; ++t) {
        alignas(32) float lanes[kLanes];
        for (int j = 0; j < 4; ++j) _mm256_store_ps(lanes + 8 * j, acc[t][j]);
        const float* xt = x + (t0 + t) * w.cols;
        for (int64_t c = full; c < w.cols; ++c) lanes[c % kLanes] = std::fma(xt[c], weight_at(w, r, c), lanes[c % kLanes]);
        float sum = reduce_lanes(lanes);
        if (job.bias) sum += job.bias[r];
        job.y[(t0 + t) * w.rows + r] = sum;
      }
    }
  }
}

}  // namespace moe::cpu::detail
