#pragma once
// The middle tier on the host: a pool of host memory within the --host-mem budget holding
// expert copies. Experts the plan homes on the host are loaded at start and stay; others are
// kept after an NVMe read while room remains, least recently used first out. Thread-safe.
#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "offload/cache/host_pool.h"
#include "offload/executor/expert_backing.h"

namespace moe::offload {

class HostTier {
 public:
  HostTier(const ExpertBacking& backing, uint64_t budget);
  // Loads `key` now and keeps it for the whole run (the plan's host-homed experts).
  bool pin(ExpertKey key);
  enum class Source { kHost, kBacking, kCancelled };
  // Copies the expert into dst in chunks, from the pool when held, else from the backing
  // (keeping a copy when there is room); stops between chunks once `cancelled` is set.
  Source copy_out(ExpertKey key, std::byte* dst, const std::atomic<bool>* cancelled = nullptr);
  static constexpr uint64_t kChunkBytes = uint64_t(1) << 20;
  uint64_t budget() const { return pool_ ? pool_->budget() : 0; }

 private:
  bool load(ExpertKey key, bool pinned);
  const ExpertBacking& backing_;
  std::unique_ptr<HostPool> pool_;
  std::mutex mutex_;
  struct Held {
    HostBlock block;
    bool pinned = false;
    std::list<ExpertKey>::iterator lru;  // its place in lru_ when not pinned
  };
  std::unordered_map<ExpertKey, Held, ExpertKeyHash> held_;
  std::list<ExpertKey> lru_;  // unpinned, most recent first
};

}  // namespace moe::offload
