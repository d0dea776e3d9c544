#pragma once
// One device's expert cache: a fixed number of equal slots (no fragmentation) over memory the
// device provides, with pins so an expert in use is never evicted.
//
// Hit path: acquire(key) -> a Handle (a pin, released on destruction).
// Fill path: reserve(key) -> a slot to fill (evicting by the policy if needed), then
// publish(key) when the bytes are there, or abandon(key) to give the slot back (a wrong
// prefetch). Others may wait() for an expert being filled.
// The cache moves no bytes itself; the transfer engine fills slots.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "offload/cache/admission_filter.h"
#include "offload/cache/eviction_policy.h"
#include "offload/cache/expert_key.h"

namespace moe::offload {

struct CacheCounters {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t fills = 0;
  uint64_t abandoned = 0;
  uint64_t not_admitted = 0;  // reservations the admission filter refused (the expert streams)
  uint64_t bytes_filled = 0;
};

class ExpertCache;

// A pin on a resident expert; movable, releases on destruction.
class CacheHandle {
 public:
  CacheHandle() = default;
  CacheHandle(CacheHandle&& other) noexcept { *this = std::move(other); }
  CacheHandle& operator=(CacheHandle&& other) noexcept;
  ~CacheHandle() { release(); }
  void release();
  std::byte* data() const { return data_; }
  ExpertKey key() const { return key_; }
  explicit operator bool() const { return cache_ != nullptr; }

 private:
  friend class ExpertCache;
  CacheHandle(ExpertCache* cache, ExpertKey key, std::byte* data) : cache_(cache), key_(key), data_(data) {}
  ExpertCache* cache_ = nullptr;
  ExpertKey key_;
  std::byte* data_ = nullptr;
};

class ExpertCache {
 public:
  enum class State { kAbsent, kFilling, kResident };

  // `arena` holds `slots` slots of `slot_bytes` each (device memory, or host memory for a CPU
  // virtual device); the cache does not own it. Without an admission filter every miss may
  // evict; with one, a full cache keeps its victim unless the filter prefers the newcomer.
  ExpertCache(std::byte* arena, uint64_t slot_bytes, int slots, std::unique_ptr<EvictionPolicy> policy,
              std::unique_ptr<AdmissionFilter> admission = nullptr);

  // A pinned resident expert, or nothing (a miss is counted). Each call is one use of the
  // expert for the admission filter.
  std::optional<CacheHandle> acquire(ExpertKey key);
  // A slot for `key` to be filled (the filler holds it pinned), evicting if needed; nothing
  // when the expert is already present or filling, when every slot is pinned, or when the
  // admission filter keeps the victim.
  std::byte* reserve(ExpertKey key, bool high_precision = true);
  void publish(ExpertKey key, uint64_t bytes);
  void abandon(ExpertKey key);
  // Blocks until `key` is resident (pinned handle) or its fill was abandoned (nothing).
  std::optional<CacheHandle> wait(ExpertKey key);

  State state(ExpertKey key) const;
  void set_current_layer(int layer);
  CacheCounters counters() const;
  int slots() const { return int(slots_.size()); }
  uint64_t slot_bytes() const { return slot_bytes_; }
  int resident_count() const;
  std::string policy_name() const;

 private:
  friend class CacheHandle;
  void unpin(ExpertKey key);
  struct Entry {
    int slot = -1;
    State state = State::kAbsent;
    int pins = 0;
  };

  std::byte* arena_;
  uint64_t slot_bytes_;
  std::vector<bool> slots_;  // in use
  std::unique_ptr<EvictionPolicy> policy_;
  std::unique_ptr<AdmissionFilter> admission_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<ExpertKey, Entry, ExpertKeyHash> entries_;
  CacheCounters counters_;
};

}  // namespace moe::offload
