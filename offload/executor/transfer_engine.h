#pragma once
// Copies experts into a device's cache slots on a copy thread (the CPU stand-in for a copy
// stream), in chunks so that a wrong prefetch can be abandoned between them. Demand fetches
// jump ahead of queued prefetches. Each job ends in publish() or abandon() on the cache.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "offload/cache/expert_cache.h"

namespace moe::offload {

class TransferEngine {
 public:
  // `fill(key, dst, cancelled)` produces the expert's bytes into dst (from the host tier or
  // the backing), checking `cancelled` between chunks; it returns false when it stopped early.
  using Fill = std::function<bool(ExpertKey key, std::byte* dst, const std::atomic<bool>& cancelled)>;
  TransferEngine(ExpertCache& cache, Fill fill);
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  // `dst` is the slot cache.reserve(key) returned.
  void submit(ExpertKey key, std::byte* dst, bool demand);
  // Stops a queued or running prefetch; its slot is abandoned. No effect once published.
  void cancel(ExpertKey key);
  // Blocks until nothing is queued or running.
  void drain();

 private:
  struct Job {
    ExpertKey key;
    std::byte* dst;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };
  void loop();

  ExpertCache& cache_;
  Fill fill_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  std::unordered_map<ExpertKey, std::shared_ptr<std::atomic<bool>>, ExpertKeyHash> live_;
  int running_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moe::offload
