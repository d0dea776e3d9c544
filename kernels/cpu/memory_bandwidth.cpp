#include "kernels/cpu/memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace moe::cpu {
namespace {

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(a, b));
  uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) s += p[i];
  return s;
}

// The widest loads, four chains, and the stream asked for ahead (as the GEMV does), so that the
// ceiling is what a kernel can get, not what one simple loop gets.
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint64_t* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const char* ahead = reinterpret_cast<const char*>(p + i) + 4096;
    for (int line = 0; line < 256; line += 64) _mm_prefetch(ahead + line, _MM_HINT_T1);
    a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 8));
    c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 16));
    d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 24));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
  uint64_t s = 0;
  for (uint64_t v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

uint64_t sum_portable(const uint64_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(n);
  pool.parallel_for(pool.size(), [&](int64_t b, int64_t e) {  // first touch by the readers
    for (int64_t t = b; t < e; ++t)
      std::fill(buffer.begin() + int64_t(n) * t / pool.size(), buffer.begin() + int64_t(n) * (t + 1) / pool.size(), uint64_t(t));
  });
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(pool.size(), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const size_t lo = n * size_t(t) / size_t(pool.size()), hi = n * size_t(t + 1) / size_t(pool.size());
        const uint64_t* p = buffer.data() + lo;
        sink += avx512 ? sum_avx512(p, hi - lo) : avx2 ? sum_avx2(p, hi - lo) : sum_portable(p, hi - lo);
      }
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / seconds);
  }
  return sink.load() == 42 ? best * 1.0 : best;  // the sums stay observable
}

double measure_memcpy_bandwidth(size_t bytes, int repeats) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 0;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, double(bytes) / seconds);
    src[size_t(i)] = dst[bytes - 1 - size_t(i)];  // keep the copies observable
  }
  return best;
}

}  // namespace moe::cpu
