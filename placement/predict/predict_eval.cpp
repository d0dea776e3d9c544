#include "placement/predict/predict_eval.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>

#include "placement/predict/routing_predictor.h"
#include "runtime/core/error.h"

namespace moe::placement {

bool has_gate_guesses(const Trace& trace) {
  for (const TokenRecord& t : trace.tokens)
    for (const LayerRouting& l : t.layers)
      if (!l.guesses.empty()) return true;
  return false;
}

int default_guess_count(const Trace& trace) {
  double chosen = 0, layers = 0;
  for (const TokenRecord& t : trace.tokens)
    for (const LayerRouting& l : t.layers) chosen += double(l.experts.size()), layers += 1;
  const int mean = layers > 0 ? int(std::lround(chosen / layers)) : trace.model.top_k;
  return std::clamp(mean, 1, std::max(1, trace.model.num_experts));
}

std::vector<PredictorScores> evaluate_predictors(const Trace& train, const Trace& test, const PredictEvalOptions& options) {
  MOE_CHECK(!train.tokens.empty() && !test.tokens.empty(), ErrorCode::kInvalidArgument,
            "the {} trace holds no tokens", train.tokens.empty() ? "training" : "test");
  MOE_CHECK(train.model.num_layers == test.model.num_layers && train.model.num_experts == test.model.num_experts,
            ErrorCode::kInvalidArgument, "the training trace has {} layers x {} experts, the test trace {} x {}",
            train.model.num_layers, train.model.num_experts, test.model.num_layers, test.model.num_experts);
  MOE_CHECK(options.max_ahead >= 1 && options.max_ahead <= 3, ErrorCode::kInvalidArgument,
            "predictions 1 to 3 layers ahead, not {}", options.max_ahead);
  const int E = test.model.num_experts;
  const int count = options.count > 0 ? std::min(options.count, E) : default_guess_count(test);
  const int D = std::min(options.max_ahead, test.model.num_layers - 1);

  std::vector<std::unique_ptr<RoutingPredictor>> predictors;
  for (const char* name : {"popularity", "stats", "history", "gate"})
    predictors.push_back(make_routing_predictor(name, train, test.model));
  std::vector<PredictorScores> scores(predictors.size() + 1);
  scores[0].name = "random";
  for (size_t i = 0; i < predictors.size(); ++i) {
    scores[i + 1].name = predictors[i]->name();
    scores[i + 1].learnt = predictors[i]->describe();
  }
  for (auto& s : scores) s.ahead.resize(size_t(std::max(D, 0)));
  scores.back().available = has_gate_guesses(test);

  std::vector<int32_t> guess;
  for (const TokenRecord& t : test.tokens) {
    for (size_t i = 0; i < t.layers.size(); ++i) {
      const std::span<const LayerRouting> path(t.layers.data(), i + 1);
      const int layer = t.layers[i].layer;
      for (size_t j = i + 1; j < t.layers.size() && t.layers[j].layer - layer <= D; ++j) {
        const int ahead = t.layers[j].layer - layer;
        const auto& chosen = t.layers[j].experts;
        PredictionScore& r = scores[0].ahead[size_t(ahead - 1)];  // a uniform guess of `count`
        ++r.events;
        r.guessed += count;
        r.chosen += double(chosen.size());
        r.hits += double(count) * double(chosen.size()) / double(E);
        for (size_t p = 0; p < predictors.size(); ++p) {
          if (!scores[p + 1].available) continue;
          predictors[p]->predict(t.sequence_id, path, layer, ahead, count, guess);
          PredictionScore& s = scores[p + 1].ahead[size_t(ahead - 1)];
          ++s.events;
          s.guessed += double(guess.size());
          s.chosen += double(chosen.size());
          for (int32_t g : guess) s.hits += std::count(chosen.begin(), chosen.end(), g) > 0 ? 1 : 0;
        }
      }
    }
    for (auto& p : predictors) p->observe(t.sequence_id, t);
  }
  return scores;
}

}  // namespace moe::placement
