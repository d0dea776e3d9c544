#pragma once
// The middle tier on the host: a pool of host memory within the --host-mem budget holding
// expert copies. Experts the plan homes on the host are loaded at start and stay; others are
// kept after an NVMe read while room remains, least recently used first out. Thread-safe, and
// the lock is held only for bookkeeping: reads from the backing and copies out run unlocked
// (a copy in progress keeps its block from eviction), so several devices' copy threads and the
// executor's own reads proceed side by side.
#include <atomic>
#include <condition_variable>
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
  struct Held;

 public:
  // chunk_bytes: the pieces copies go out in (cancellation is checked between them).
  HostTier(const ExpertBacking& backing, uint64_t budget, uint64_t chunk_bytes = kChunkBytes);
  // Loads `key` now and keeps it for the whole run (the plan's host-homed experts).
  bool pin(ExpertKey key);
  enum class Source { kHost, kBacking, kCancelled };
  // Hands the expert's bytes to `write` in chunks, from the pool when held, else from the
  // backing (keeping a copy when there is room); stops between chunks once `cancelled` is set.
  using Write = std::function<void(uint64_t offset, const std::byte* src, uint64_t bytes)>;
  Source copy_out(ExpertKey key, const Write& write, const std::atomic<bool>* cancelled = nullptr);
  // The same into host memory (read there straight from the backing when the pool has no room).
  Source copy_out(ExpertKey key, std::byte* dst, const std::atomic<bool>* cancelled = nullptr);
  // A held expert's bytes in the pool, kept from eviction while the lease lives: what a streamed
  // or host-computed expert reads in place (from pinned memory a GPU copies at the link's rate;
  // a copy into pageable memory first cost a Mixtral-8x7B expert ~10x its upload).
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { reset(); }
    void reset();
    const std::byte* data() const;
    explicit operator bool() const { return held_ != nullptr; }

   private:
    friend class HostTier;
    Lease(HostTier* tier, Held* held) : tier_(tier), held_(held) {}
    HostTier* tier_ = nullptr;
    Held* held_ = nullptr;
  };
  // The expert held in the pool (read in from the backing first, evicting as copy_out does), or
  // an empty lease when the pool has no room for it; `source` says where it came from.
  Lease borrow(ExpertKey key, Source* source = nullptr);
  static constexpr uint64_t kChunkBytes = uint64_t(4) << 20;  // large enough for full-speed PCIe copies
  uint64_t budget() const { return pool_ ? pool_->budget() : 0; }
  // Copies read straight from a mapped checkpoint (no room here) give its pages back at once,
  // so the page cache does not keep a second copy of what a device caches or streams: for runs
  // under a memory limit, where those pages would crowd out the dense weights'.
  void release_after_read(bool on) { release_after_read_ = on; }

 private:
  std::optional<HostBlock> allocate_evicting();  // with mutex_ held
  // The expert held with one more user (read in first when not held), or null when the pool has
  // no room; takes the lock itself. release() undoes the user.
  Held* hold(ExpertKey key, Source& source);
  void release(Held* held);
  bool release_after_read_ = false;
  Source copy(ExpertKey key, const Write& write, std::byte* host_dst, const std::atomic<bool>* cancelled);
  const ExpertBacking& backing_;
  uint64_t chunk_bytes_;
  std::unique_ptr<HostPool> pool_;
  std::mutex mutex_;
  std::condition_variable loaded_;
  struct Held {
    HostBlock block;
    bool pinned = false;
    bool loading = false;  // being read from the backing (unlocked); others wait
    int users = 0;         // copies out in progress: not evictable
    std::list<ExpertKey>::iterator lru;  // its place in lru_ when not pinned
  };
  std::unordered_map<ExpertKey, Held, ExpertKeyHash> held_;
  std::list<ExpertKey> lru_;  // unpinned, most recent first
};

}  // namespace moe::offload
