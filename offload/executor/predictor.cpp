#include "offload/executor/predictor.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "placement/predict/routing_predictor.h"
#include "runtime/core/error.h"
#include "runtime/model/sequence_ids.h"

namespace moe::offload {
namespace {

class GatePredictor final : public Predictor {
 public:
  GatePredictor(const model::Transformer& t, int depth, int guesses)
      : t_(t), depth_(depth), guesses_per_token_(guesses), sparse_(t.config().moe_layers()) {}
  std::vector<ExpertKey> predict(int layer, const float* x, int64_t m, const model::RoutingDecision&) override {
    std::vector<ExpertKey> out;
    const auto at = std::find(sparse_.begin(), sparse_.end(), layer);
    for (int ahead = 1; ahead <= depth_ && at != sparse_.end() && at + ahead < sparse_.end(); ++ahead) {
      const int next = *(at + ahead);
      gate_guesses(t_, next, x, m, guesses_per_token_, guesses_);
      std::set<int32_t> chosen;
      for (const auto& g : guesses_) chosen.insert(g.begin(), g.end());
      for (int32_t e : chosen) out.push_back({next, e});
    }
    return out;
  }
  std::string name() const override { return depth_ == 1 ? "next-layer" : fmt::format("stacked:{}", depth_); }

 private:
  const model::Transformer& t_;
  int depth_, guesses_per_token_;
  std::vector<int> sparse_;
  std::vector<std::vector<int32_t>> guesses_;
};

// A routing predictor learnt from a profile trace, fed the routing of the run: each token's
// path through this step's MoE layers, and the earlier tokens of its own sequence as its history.
class LearntPredictor final : public Predictor {
 public:
  LearntPredictor(const model::Transformer& t, std::unique_ptr<placement::RoutingPredictor> p, int depth, int guesses)
      : t_(t), predictor_(std::move(p)), depth_(depth), guesses_per_token_(guesses), sparse_(t.config().moe_layers()) {}
  std::vector<ExpertKey> predict(int layer, const float*, int64_t m, const model::RoutingDecision& routing) override {
    const int s = t_.config().moe_layer_index(layer);
    if (s < 0) return {};
    if (s == 0 || int64_t(paths_.size()) != m) {  // a new step: the last one's tokens are history
      if (s == 0)
        for (size_t t = 0; t < paths_.size(); ++t) predictor_->observe(sequence_of_[t], paths_[t]);
      begin_step(m);
    }
    for (int64_t t = 0; t < m; ++t) {
      const auto e = routing.experts_of(t);
      paths_[size_t(t)].layers.push_back({s, {e.begin(), e.end()}, {}});
    }
    std::vector<ExpertKey> out;
    for (int ahead = 1; ahead <= depth_ && s + ahead < int(sparse_.size()); ++ahead) {
      std::set<int32_t> chosen;
      for (size_t t = 0; t < paths_.size(); ++t) {
        predictor_->predict(sequence_of_[t], paths_[t].layers, s, ahead, guesses_per_token_, guess_);
        chosen.insert(guess_.begin(), guess_.end());
      }
      for (int32_t e : chosen) out.push_back({sparse_[size_t(s + ahead)], e});
    }
    return out;
  }
  std::string name() const override {
    return depth_ > 1 ? fmt::format("{}:{}", predictor_->name(), depth_) : predictor_->name();
  }

 private:
  // A new step: its rows' sequence ids, the histories of sequences that ended forgotten.
  void begin_step(int64_t m) {
    paths_.assign(size_t(m), placement::TokenRecord{});
    const auto rows = t_.step_rows();
    if (int64_t(rows.size()) != m) {  // not the transformer's own step: one shared history
      sequence_of_.assign(size_t(m), 0);
      return;
    }
    ended_.clear();
    sequences_.assign(rows, sequence_of_, &ended_);
    for (int64_t id : ended_) predictor_->forget(id);
  }

  const model::Transformer& t_;
  std::unique_ptr<placement::RoutingPredictor> predictor_;
  int depth_, guesses_per_token_;
  std::vector<int> sparse_;
  std::vector<placement::TokenRecord> paths_;  // this step's tokens, their MoE layers so far
  std::vector<int64_t> sequence_of_;           // this step's tokens' sequence ids
  model::SequenceIds sequences_{256};          // a sequence unseen for 256 steps has ended
  std::vector<int64_t> ended_;
  std::vector<int32_t> guess_;
};

class UnionPredictor final : public Predictor {
 public:
  UnionPredictor(std::unique_ptr<Predictor> a, std::unique_ptr<Predictor> b) : a_(std::move(a)), b_(std::move(b)) {}
  std::vector<ExpertKey> predict(int layer, const float* x, int64_t m, const model::RoutingDecision& r) override {
    std::vector<ExpertKey> out = a_->predict(layer, x, m, r);
    for (const ExpertKey k : b_->predict(layer, x, m, r))
      if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
    return out;
  }
  std::string name() const override { return a_->name() + "+" + b_->name(); }

 private:
  std::unique_ptr<Predictor> a_, b_;
};

}  // namespace

void gate_guesses(const model::Transformer& transformer, int target, const float* x, int64_t m, int count,
                  std::vector<std::vector<int32_t>>& out) {
  const int E = transformer.config().num_experts;
  std::vector<float> logits(size_t(m * E));
  transformer.router_logits(target, x, m, logits.data());
  out.resize(size_t(m));
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t row = 0; row < m; ++row) {
    std::iota(order.begin(), order.end(), 0);
    const float* r = logits.data() + row * E;
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return r[a] > r[b]; });
    out[size_t(row)].assign(order.begin(), order.begin() + std::min(std::max(count, 0), E));
  }
}

namespace {
// "name" or "name:D": the depth, or 0 when malformed.
int depth_of(const std::string& spec, const std::string& name, int max) {
  if (spec == name) return 1;
  if (spec.rfind(name + ":", 0) != 0) return -1;
  int depth = 0;
  try {
    size_t used = 0;
    depth = std::stoi(spec.substr(name.size() + 1), &used);
    if (used != spec.size() - name.size() - 1) depth = 0;
  } catch (const std::exception&) {
  }
  return depth >= 1 && depth <= max ? depth : 0;
}
}  // namespace

std::unique_ptr<Predictor> make_predictor(const std::string& spec, const model::Transformer& transformer,
                                          const placement::Trace* profile, int guesses) {
  if (spec == "none" || spec.empty()) return nullptr;
  const loading::ModelConfig& config = transformer.config();
  MOE_CHECK(guesses >= 0 && guesses <= config.num_experts, ErrorCode::kInvalidArgument,
            "{} guesses per token and layer for a model of {} experts a layer", guesses, config.num_experts);
  const int k = guesses > 0 ? guesses : std::max(1, config.num_experts_per_tok);
  if (const auto plus = spec.find('+'); plus != std::string::npos) {
    auto a = make_predictor(spec.substr(0, plus), transformer, profile, guesses);
    auto b = make_predictor(spec.substr(plus + 1), transformer, profile, guesses);
    MOE_CHECK(a && b, ErrorCode::kInvalidArgument, "predictor '{}': 'none' in a union", spec);
    return std::make_unique<UnionPredictor>(std::move(a), std::move(b));
  }
  if (spec == "next-layer") return std::make_unique<GatePredictor>(transformer, 1, k);
  for (const char* gate : {"stacked", "gate"}) {
    const int depth = depth_of(spec, gate, 8);
    if (depth < 0 || (depth == 1 && spec == "stacked")) continue;
    MOE_CHECK(depth >= 1, ErrorCode::kInvalidArgument, "{}:D needs a depth from 1 to 8, not '{}'", gate, spec);
    return std::make_unique<GatePredictor>(transformer, depth, k);
  }
  for (const char* learnt : {"stats", "history", "popularity"}) {
    const int depth = depth_of(spec, learnt, 3);
    if (depth < 0) continue;
    MOE_CHECK(depth >= 1, ErrorCode::kInvalidArgument, "{}:D needs a depth from 1 to 3, not '{}'", learnt, spec);
    MOE_CHECK(profile != nullptr, ErrorCode::kInvalidArgument, "the {} predictor needs a profile trace (--profile-trace)", spec);
    MOE_CHECK(profile->model.num_layers == config.num_sparse_layers() && profile->model.num_experts == config.num_experts,
              ErrorCode::kInvalidArgument, "the profile trace has {} MoE layers x {} experts, the model {} x {}",
              profile->model.num_layers, profile->model.num_experts, config.num_sparse_layers(), config.num_experts);
    return std::make_unique<LearntPredictor>(transformer, placement::make_routing_predictor(learnt, *profile, profile->model),
                                             depth, k);
  }
  fail(ErrorCode::kInvalidArgument,
       "unknown predictor '{}' (none, next-layer, stacked:D, gate[:D], stats[:D], history[:D], popularity[:D], or two "
       "joined by +)",
       spec);
}

}  // namespace moe::offload
