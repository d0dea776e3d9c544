#pragma once
// The middle tier on the host: a pool of host memory within the --host-mem budget holding
// expert copies. Experts the plan homes on the host are loaded at start and stay; others are
// kept after an NVMe read while room remains, least recently used first out. Thread-safe.
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "offload/cache/host_pool.h"
#include "offload/executor/expert_backing.h"

namespace moe::offload {

class HostTier {
 public:
  HostTier(const ExpertBacking& backing, uint64_t budget);
  // Loads `key` now and keeps it for the whole run (the plan's host-homed experts).
  bool pin(ExpertKey key);
  enum class Source { kHost, kBacking, kCancelled };
  // Hands the expert's bytes to `write` in chunks, from the pool when held, else from the
  // backing (keeping a copy when there is room); stops between chunks once `cancelled` is set.
  using Write = std::function<void(uint64_t offset, const std::byte* src, uint64_t bytes)>;
  Source copy_out(ExpertKey key, const Write& write, const std::atomic<bool>* cancelled = nullptr);
  // The same into host memory (read there straight from the backing when the pool has no room).
  Source copy_out(ExpertKey key, std::byte* dst, const std::atomic<bool>* cancelled = nullptr);
  static constexpr uint64_t kChunkBytes = uint64_t(4) << 20;  // large enough for full-speed PCIe copies
  uint64_t budget() const { return pool_ ? pool_->budget() : 0; }

 private:
  bool load(ExpertKey key, bool pinned);
  Source copy(ExpertKey key, const Write& write, std::byte* host_dst, const std::atomic<bool>* cancelled);
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
  std::vector<std::byte> staging_;  // a backing read with no room in the pool, bound for a device
};

}  // namespace moe::offload
