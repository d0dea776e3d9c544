#pragma once
// Least recently used in O(1) per access: a recency list of the cached experts and a map into
// it (a scan of every expert's history per victim made LRU slower than Belady on long traces,
// and would cost 15k comparisons an eviction on DeepSeek-V3). Used by the executor's caches and
// the simulator alike.
#include <list>
#include <unordered_map>

#include "offload/cache/eviction_policy.h"
#include "offload/cache/expert_key.h"

namespace moe::offload {

class LruPolicy final : public EvictionPolicy {
 public:
  void on_insert(ExpertKey key, bool) override { touch(key); }
  void on_access(ExpertKey key) override { touch(key); }
  void on_remove(ExpertKey key) override;
  // From the least recent end; the experts skipped (in use by this layer) are few and recent.
  std::optional<ExpertKey> victim(const std::function<bool(ExpertKey)>& evictable) override;
  std::string name() const override { return "lru"; }

 private:
  void touch(ExpertKey key);
  std::list<ExpertKey> order_;  // most recent first
  std::unordered_map<ExpertKey, std::list<ExpertKey>::iterator, ExpertKeyHash> where_;
};

}  // namespace moe::offload
