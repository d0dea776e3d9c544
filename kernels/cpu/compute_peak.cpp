#include "kernels/cpu/compute_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace moe::cpu {
namespace {

constexpr int kChains = 16;           // independent accumulators: more than latency x FMA ports
constexpr int64_t kIterations = 1 << 21;

// Each returns flops done; the sum keeps the work observable.
__attribute__((target("avx512f"))) double fma_avx512(float* sink) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < kIterations; ++it)
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float l[16];
  _mm512_store_ps(l, s);
  for (float v : l) *sink += v;
  return 2.0 * 16 * kChains * double(kIterations);
}

__attribute__((target("avx2,fma"))) double fma_avx2(float* sink) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(float(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < kIterations; ++it)
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float l[8];
  _mm256_store_ps(l, s);
  for (float v : l) *sink += v;
  return 2.0 * 8 * kChains * double(kIterations);
}

double fma_scalar(float* sink) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = float(i);
  const int64_t iterations = kIterations / 8;
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 16
    for (float& v : acc) v = __builtin_fmaf(v, 0.999999f, 1e-7f);
  for (float v : acc) *sink += v;
  return 2.0 * kChains * double(iterations);
}

}  // namespace

double measure_fma_peak(ThreadPool& pool, int repeats) {
  const Isa isa = active_isa();
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    std::atomic<double> flops{0};
    float sinks[256] = {};
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(pool.size(), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        float* sink = &sinks[t % 256];
        const double f = isa == Isa::kAvx512 ? fma_avx512(sink) : isa == Isa::kAvx2 ? fma_avx2(sink) : fma_scalar(sink);
        flops.fetch_add(f);
      }
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, flops.load() / seconds);
  }
  return best;
}

}  // namespace moe::cpu
