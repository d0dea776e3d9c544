#pragma once
// Least recently used in O(1) per access: a recency list of the cached experts and a map into
// it. The executor's LRU (offload/cache) keeps a history of every expert ever seen and scans
// it for each victim, which made `moe sim --policy lru` slower than Belady on long traces.
// Same choice as that one: the least recently used expert that may go.
#include <list>
#include <unordered_map>

#include "offload/cache/eviction_policy.h"

namespace moe::placement {

class LruPolicy final : public offload::EvictionPolicy {
 public:
  void on_insert(offload::ExpertKey key, bool) override { touch(key); }
  void on_access(offload::ExpertKey key) override { touch(key); }
  void on_remove(offload::ExpertKey key) override;
  // From the least recent end; the experts skipped (in use by this layer) are few and recent.
  std::optional<offload::ExpertKey> victim(const std::function<bool(offload::ExpertKey)>& evictable) override;
  std::string name() const override { return "lru"; }

 private:
  void touch(offload::ExpertKey key);
  std::list<offload::ExpertKey> order_;  // most recent first
  std::unordered_map<offload::ExpertKey, std::list<offload::ExpertKey>::iterator, offload::ExpertKeyHash> where_;
};

}  // namespace moe::placement
