#pragma once
// Which resident expert an ExpertCache gives up when it needs a slot. The cache calls these
// under its lock and only offers experts that are neither pinned nor being filled.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "offload/cache/expert_key.h"

namespace moe::offload {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void on_insert(ExpertKey key, bool high_precision) = 0;
  virtual void on_access(ExpertKey key) = 0;
  virtual void on_remove(ExpertKey key) = 0;
  // The expert to evict among those `evictable` accepts; nullopt when none may go.
  virtual std::optional<ExpertKey> victim(const std::function<bool(ExpertKey)>& evictable) = 0;
  // The layer being computed now (HOBBIT's layer-distance term uses it).
  virtual void set_current_layer(int /*layer*/) {}
  virtual std::string name() const = 0;
};

// HOBBIT's multi-metric priority (arXiv 2411.01433): an expert is worth keeping when it was
// used recently, often, in high precision, and its layer comes soon. The lowest score goes.
struct MultiMetricWeights {
  double recency = 1.0;
  double frequency = 1.0;
  double precision = 0.5;
  double layer_distance = 1.0;
  int num_layers = 32;  // for the distance from the current layer, which wraps at the model's end
};

std::unique_ptr<EvictionPolicy> make_lru_policy();
std::unique_ptr<EvictionPolicy> make_lfu_policy();  // ties: least recently used
// Experts of `pinned` are never evicted; the rest are LRU.
std::unique_ptr<EvictionPolicy> make_plan_pinned_policy(std::unordered_set<ExpertKey, ExpertKeyHash> pinned);
std::unique_ptr<EvictionPolicy> make_multi_metric_policy(const MultiMetricWeights& weights);
// "lru", "lfu", "multi"; throws moe::Error(kInvalidArgument) otherwise.
std::unique_ptr<EvictionPolicy> make_policy(const std::string& name, int num_layers = 32);

}  // namespace moe::offload
