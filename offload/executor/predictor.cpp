#include "offload/executor/predictor.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "runtime/core/error.h"

namespace moe::offload {
namespace {

class GatePredictor final : public Predictor {
 public:
  GatePredictor(const model::Transformer& t, int depth) : t_(t), depth_(depth), sparse_(t.config().moe_layers()) {}
  std::vector<ExpertKey> predict(int layer, const float* x, int64_t m, const model::RoutingDecision&) override {
    std::vector<ExpertKey> out;
    const auto at = std::find(sparse_.begin(), sparse_.end(), layer);
    const int E = t_.config().num_experts, k = t_.config().num_experts_per_tok;
    for (int ahead = 1; ahead <= depth_ && at != sparse_.end() && at + ahead < sparse_.end(); ++ahead) {
      const int next = *(at + ahead);
      logits_.resize(size_t(m * E));
      t_.router_logits(next, x, m, logits_.data());
      std::set<int32_t> chosen;
      std::vector<int32_t> order(static_cast<size_t>(E));
      for (int64_t row = 0; row < m; ++row) {
        std::iota(order.begin(), order.end(), 0);
        const float* r = logits_.data() + row * E;
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return r[a] > r[b]; });
        chosen.insert(order.begin(), order.begin() + std::min(k, E));
      }
      for (int32_t e : chosen) out.push_back({next, e});
    }
    return out;
  }
  std::string name() const override { return depth_ == 1 ? "next-layer" : "stacked:" + std::to_string(depth_); }

 private:
  const model::Transformer& t_;
  int depth_;
  std::vector<int> sparse_;
  std::vector<float> logits_;
};

class StatsPredictor final : public Predictor {
 public:
  StatsPredictor(const model::Transformer& t, const placement::Trace& trace) : sparse_(t.config().moe_layers()) {
    E_ = t.config().num_experts;
    MOE_CHECK(trace.model.num_layers == int(sparse_.size()) && trace.model.num_experts == E_, ErrorCode::kInvalidArgument,
              "the profile trace has {} MoE layers x {} experts, the model {} x {}", trace.model.num_layers,
              trace.model.num_experts, sparse_.size(), E_);
    counts_.assign(sparse_.size(), std::vector<double>(size_t(E_) * size_t(E_), 0.0));
    for (const auto& token : trace.tokens)
      for (size_t i = 0; i + 1 < token.layers.size(); ++i)
        if (token.layers[i + 1].layer == token.layers[i].layer + 1)
          for (int32_t e : token.layers[i].experts)
            for (int32_t f : token.layers[i + 1].experts) counts_[size_t(token.layers[i].layer)][size_t(e * E_ + f)] += 1;
  }
  std::vector<ExpertKey> predict(int layer, const float*, int64_t, const model::RoutingDecision& routing) override {
    const auto at = std::find(sparse_.begin(), sparse_.end(), layer);
    if (at == sparse_.end() || at + 1 == sparse_.end()) return {};
    const auto& c = counts_[size_t(at - sparse_.begin())];
    std::vector<std::pair<double, int32_t>> score(static_cast<size_t>(E_));
    std::set<int32_t> used(routing.experts.begin(), routing.experts.end());
    for (int f = 0; f < E_; ++f) {
      score[size_t(f)] = {0.0, f};
      for (int32_t e : routing.experts) {
        double row = 0;
        for (int g = 0; g < E_; ++g) row += c[size_t(e * E_ + g)];
        if (row > 0) score[size_t(f)].first += c[size_t(e * E_ + f)] / row;
      }
    }
    std::stable_sort(score.begin(), score.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<ExpertKey> out;
    for (size_t i = 0; i < used.size() && i < score.size() && score[i].first > 0; ++i) out.push_back({*(at + 1), score[i].second});
    return out;
  }
  std::string name() const override { return "stats"; }

 private:
  std::vector<int> sparse_;
  int E_ = 0;
  std::vector<std::vector<double>> counts_;
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

std::unique_ptr<Predictor> make_predictor(const std::string& spec, const model::Transformer& transformer,
                                          const placement::Trace* profile) {
  if (spec == "none" || spec.empty()) return nullptr;
  if (spec == "next-layer") return std::make_unique<GatePredictor>(transformer, 1);
  if (spec.rfind("stacked:", 0) == 0) {
    int depth = 0;
    try {
      depth = std::stoi(spec.substr(8));
    } catch (const std::exception&) {
    }
    MOE_CHECK(depth >= 1 && depth <= 8, ErrorCode::kInvalidArgument, "stacked:D needs a depth from 1 to 8, not '{}'", spec);
    return std::make_unique<GatePredictor>(transformer, depth);
  }
  if (spec == "stats" || spec == "next-layer+stats") {
    MOE_CHECK(profile != nullptr, ErrorCode::kInvalidArgument, "the {} predictor needs a profile trace (--profile-trace)", spec);
    auto stats = std::make_unique<StatsPredictor>(transformer, *profile);
    if (spec == "stats") return stats;
    return std::make_unique<UnionPredictor>(std::make_unique<GatePredictor>(transformer, 1), std::move(stats));
  }
  fail(ErrorCode::kInvalidArgument, "unknown predictor '{}' (none, next-layer, stacked:D, stats, next-layer+stats)", spec);
}

}  // namespace moe::offload
