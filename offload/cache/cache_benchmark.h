#pragma once
// The expert cache's hit path (acquire + release), the cost every MoE layer pays per expert,
// beside the floor of what it must do at least once: an uncontended mutex lock/unlock plus a
// hash-map lookup, measured in the same run.
#include <cstdint>

namespace moe::offload {

struct CacheBenchmark {
  int threads = 1;
  double acquire_release_ns = 0;  // per operation, per thread
  double floor_ns = 0;            // mutex + unordered_map find, single thread
  double ratio() const { return acquire_release_ns > 0 ? floor_ns / acquire_release_ns : 0; }
};

CacheBenchmark run_cache_benchmark(int threads, int64_t operations_per_thread);

}  // namespace moe::offload
