#pragma once
// Belady's offline optimum (MIN): evict the expert whose next use is farthest in the future,
// and do not cache an expert used later than everything already cached (bypass). With the
// future known, no policy gets more hits from a cache of the same size; the simulator uses it
// as the bound for the online policies.
#include <limits>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "offload/cache/eviction_policy.h"

namespace moe::placement {

// The future accesses of one cache, in order.
class FutureUses {
 public:
  explicit FutureUses(const std::vector<offload::ExpertKey>& accesses);
  // The first access of `key` after position `now`; a huge number when there is none.
  int64_t next_use(offload::ExpertKey key, int64_t now) const;
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

 private:
  std::unordered_map<offload::ExpertKey, std::vector<int64_t>, offload::ExpertKeyHash> positions_;
};

class BeladyPolicy : public offload::EvictionPolicy {
 public:
  // `now` points at the cache's current access position, advanced by the simulator.
  BeladyPolicy(const FutureUses* future, const int64_t* now) : future_(future), now_(now) {}
  void on_insert(offload::ExpertKey key, bool) override { members_.insert(key); }
  void on_access(offload::ExpertKey) override {}
  void on_remove(offload::ExpertKey key) override { members_.erase(key); }
  std::optional<offload::ExpertKey> victim(const std::function<bool(offload::ExpertKey)>& evictable) override;
  std::string name() const override { return "belady"; }
  // True when `incoming` is used no sooner than every evictable member: caching it cannot help.
  bool should_bypass(offload::ExpertKey incoming, const std::function<bool(offload::ExpertKey)>& evictable) const;

 private:
  const FutureUses* future_;
  const int64_t* now_;
  std::unordered_set<offload::ExpertKey, offload::ExpertKeyHash> members_;
};

}  // namespace moe::placement
