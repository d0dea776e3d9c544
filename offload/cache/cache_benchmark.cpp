#include "offload/cache/cache_benchmark.h"

#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "offload/cache/expert_cache.h"

namespace moe::offload {

CacheBenchmark run_cache_benchmark(int threads, int64_t ops) {
  constexpr int kExperts = 64;
  std::vector<std::byte> memory(kExperts * 64);
  ExpertCache cache(memory.data(), 64, kExperts, make_lru_policy());
  for (int e = 0; e < kExperts; ++e) {
    cache.reserve({0, e});
    cache.publish({0, e}, 64);
  }
  CacheBenchmark b;
  b.threads = threads;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&cache, ops, t] {
      for (int64_t i = 0; i < ops; ++i) {
        auto h = cache.acquire({0, int((i + t * 7) % kExperts)});
        (void)h;  // released at the end of the iteration
      }
    });
  for (auto& w : workers) w.join();
  b.acquire_release_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / double(ops);

  std::mutex mutex;
  std::unordered_map<ExpertKey, int, ExpertKeyHash> map;
  for (int e = 0; e < kExperts; ++e) map[{0, e}] = e;
  volatile int sink = 0;
  start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < ops; ++i) {
    std::lock_guard lock(mutex);
    sink = sink + map.find({0, int(i % kExperts)})->second;
  }
  b.floor_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / double(ops);
  return b;
}

}  // namespace moe::offload
