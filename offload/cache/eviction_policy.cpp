#include "offload/cache/eviction_policy.h"

#include <cmath>
#include <limits>

#include "offload/cache/lru_policy.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

// Per-expert history shared by the policies: a logical clock, last use, use count.
struct History {
  uint64_t last_use = 0;
  uint64_t uses = 0;
  bool high_precision = true;
};

class HistoryPolicy : public EvictionPolicy {
 public:
  void on_insert(ExpertKey key, bool high_precision) override {
    History& h = history_[key];
    h.last_use = ++clock_;
    ++h.uses;
    ++total_uses_;
    h.high_precision = high_precision;
  }
  void on_access(ExpertKey key) override {
    History& h = history_[key];
    h.last_use = ++clock_;
    ++h.uses;
    ++total_uses_;
  }
  void on_remove(ExpertKey key) override { resident_erase(key); }

  std::optional<ExpertKey> victim(const std::function<bool(ExpertKey)>& evictable) override {
    std::optional<ExpertKey> best;
    double best_score = std::numeric_limits<double>::infinity();
    for (const auto& [key, h] : history_) {
      if (!evictable(key)) continue;
      const double s = score(key, h);
      // Lower score goes first; ties go to the older use, then the lower key, so the order
      // is fully determined.
      if (!best || s < best_score || (s == best_score && (h.last_use < history_.at(*best).last_use ||
                                                          (h.last_use == history_.at(*best).last_use && key < *best)))) {
        best = key;
        best_score = s;
      }
    }
    return best;
  }

 protected:
  virtual double score(ExpertKey key, const History& h) const = 0;
  // Frequencies outlive residency (LFU and HOBBIT count uses across evictions).
  virtual void resident_erase(ExpertKey) {}
  uint64_t clock_ = 0;
  uint64_t total_uses_ = 0;
  std::unordered_map<ExpertKey, History, ExpertKeyHash> history_;
};

class Lfu final : public HistoryPolicy {
  double score(ExpertKey, const History& h) const override { return double(h.uses); }
  std::string name() const override { return "lfu"; }
};

class PlanPinned final : public HistoryPolicy {
 public:
  explicit PlanPinned(std::unordered_set<ExpertKey, ExpertKeyHash> pinned) : pinned_(std::move(pinned)) {}
  std::optional<ExpertKey> victim(const std::function<bool(ExpertKey)>& evictable) override {
    return HistoryPolicy::victim([&](ExpertKey k) { return !pinned_.count(k) && evictable(k); });
  }
  std::string name() const override { return "plan-pinned"; }

 private:
  double score(ExpertKey, const History& h) const override { return double(h.last_use); }
  std::unordered_set<ExpertKey, ExpertKeyHash> pinned_;
};

class MultiMetric final : public HistoryPolicy {
 public:
  explicit MultiMetric(const MultiMetricWeights& w) : w_(w) {
    MOE_CHECK(w.num_layers > 0, ErrorCode::kInvalidArgument, "the multi-metric policy needs the number of layers");
  }
  void set_current_layer(int layer) override { current_layer_ = layer; }
  std::string name() const override { return "multi"; }

 private:
  double score(ExpertKey key, const History& h) const override {
    const double recency = 1.0 / double(1 + clock_ - h.last_use);
    const double frequency = total_uses_ ? double(h.uses) / double(total_uses_) : 0.0;
    // Layers just ahead of the current one are needed soonest.
    const int distance = ((key.layer - current_layer_) % w_.num_layers + w_.num_layers) % w_.num_layers;
    const double nearness = 1.0 - double(distance) / double(w_.num_layers);
    return w_.recency * recency + w_.frequency * frequency + w_.precision * (h.high_precision ? 1.0 : 0.0) +
           w_.layer_distance * nearness;
  }
  MultiMetricWeights w_;
  int current_layer_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lru_policy() { return std::make_unique<LruPolicy>(); }
std::unique_ptr<EvictionPolicy> make_lfu_policy() { return std::make_unique<Lfu>(); }
std::unique_ptr<EvictionPolicy> make_plan_pinned_policy(std::unordered_set<ExpertKey, ExpertKeyHash> pinned) {
  return std::make_unique<PlanPinned>(std::move(pinned));
}
std::unique_ptr<EvictionPolicy> make_multi_metric_policy(const MultiMetricWeights& w) { return std::make_unique<MultiMetric>(w); }

std::unique_ptr<EvictionPolicy> make_policy(const std::string& name, int num_layers) {
  if (name == "lru") return make_lru_policy();
  if (name == "lfu") return make_lfu_policy();
  if (name == "multi") {
    MultiMetricWeights w;
    w.num_layers = num_layers;
    return make_multi_metric_policy(w);
  }
  fail(ErrorCode::kInvalidArgument, "cache policy '{}' is unknown (lru, lfu, multi)", name);
}

}  // namespace moe::offload
