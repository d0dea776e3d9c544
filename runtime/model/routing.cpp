#include "runtime/model/routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/router.h"
#include "runtime/core/error.h"

namespace moe::model {
namespace {

// w /= (sum(w) + epsilon), summed largest first as torch sums a top-k tensor.
void renormalize_largest_first(std::span<float> w, float epsilon) {
  float sum = 0.0f;
  if (std::is_sorted(w.begin(), w.end(), std::greater<>())) {  // top-k output already is
    for (float v : w) sum += v;
  } else {
    std::vector<float> sorted(w.begin(), w.end());
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    for (float v : sorted) sum += v;
  }
  sum += epsilon;
  for (float& v : w) v /= sum;
}

}  // namespace

void RoutingDecision::add_token(std::span<const int32_t> token_experts, std::span<const float> token_weights) {
  MOE_ASSERT(token_experts.size() == token_weights.size());
  std::vector<size_t> order(token_experts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return token_experts[a] < token_experts[b]; });
  for (size_t i : order) {
    experts.push_back(token_experts[i]);
    weights.push_back(token_weights[i]);
  }
  offsets.push_back(static_cast<int32_t>(experts.size()));
}

RoutingDecision route_top_k(const float* logits, int64_t num_tokens, int64_t num_experts, const TopKRouting& options) {
  MOE_CHECK(options.top_k >= 1 && options.top_k <= num_experts, ErrorCode::kInvalidArgument,
            "top-k of {} is impossible with {} experts", options.top_k, num_experts);
  RoutingDecision decision;
  decision.experts.reserve(size_t(num_tokens * options.top_k));
  decision.weights.reserve(size_t(num_tokens * options.top_k));
  std::vector<float> probs(static_cast<size_t>(num_experts));
  std::vector<int32_t> ids(static_cast<size_t>(options.top_k));
  std::vector<float> values(static_cast<size_t>(options.top_k));
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::copy_n(logits + t * num_experts, num_experts, probs.begin());
    cpu::softmax(probs.data(), num_experts);
    cpu::top_k(probs.data(), num_experts, options.top_k, ids.data(), values.data());
    if (options.renormalize) renormalize_largest_first(values, options.renormalize_epsilon);
    decision.add_token(ids, values);
  }
  return decision;
}

RoutingDecision route_grouped(const float* logits, int64_t num_tokens, int64_t num_experts, const GroupedTopK& o) {
  const int64_t E = num_experts, G = o.n_group;
  MOE_CHECK(G >= 1 && E % G == 0 && o.topk_group >= 1 && o.topk_group <= G, ErrorCode::kInvalidArgument,
            "{} experts do not split into {} groups of which {} are kept", E, G, o.topk_group);
  const int64_t per_group = E / G;
  MOE_CHECK(o.top_k >= 1 && o.top_k <= o.topk_group * per_group, ErrorCode::kInvalidArgument,
            "top-k of {} is impossible with {} experts in {} of {} groups", o.top_k, o.topk_group * per_group, o.topk_group, G);
  MOE_CHECK(!o.sigmoid || G == 1 || per_group >= 2, ErrorCode::kInvalidArgument,
            "a sigmoid router's groups score their best two experts; {} per group are too few", per_group);
  // Best first; equal values by lower index, as a stable ranking.
  const auto ranked = [](const std::vector<float>& v, int64_t k, std::vector<int32_t>& ids) {
    ids.resize(v.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
      return v[size_t(a)] > v[size_t(b)] || (v[size_t(a)] == v[size_t(b)] && a < b);
    });
    ids.resize(size_t(k));
  };
  RoutingDecision decision;
  std::vector<float> scores(static_cast<size_t>(E)), choice(static_cast<size_t>(E)), group_scores(static_cast<size_t>(G)),
      masked(static_cast<size_t>(E)), weights;
  std::vector<int32_t> groups, chosen;
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::copy_n(logits + t * E, E, scores.begin());
    if (o.sigmoid) {
      for (float& v : scores) v = cpu::sigmoid(v);
    } else {
      cpu::softmax(scores.data(), E);
    }
    for (int64_t e = 0; e < E; ++e) choice[size_t(e)] = o.bias ? scores[size_t(e)] + o.bias[e] : scores[size_t(e)];
    if (G > 1) {
      for (int64_t g = 0; g < G; ++g) {
        const auto first = choice.begin() + g * per_group;
        std::vector<float> members(first, first + per_group);
        std::sort(members.begin(), members.end(), std::greater<>());
        group_scores[size_t(g)] = o.sigmoid ? members[0] + members[1] : members[0];
      }
      ranked(group_scores, o.topk_group, groups);
      // transformers masks the other groups with -inf (V3) or 0 (V2's probabilities, all above 0).
      const float fill = o.sigmoid ? -std::numeric_limits<float>::infinity() : 0.0f;
      std::fill(masked.begin(), masked.end(), fill);
      for (int32_t g : groups)
        std::copy_n(choice.begin() + g * per_group, per_group, masked.begin() + g * per_group);
    } else {
      masked = choice;
    }
    ranked(masked, o.top_k, chosen);
    weights.resize(chosen.size());
    for (size_t i = 0; i < chosen.size(); ++i) weights[i] = o.sigmoid ? scores[size_t(chosen[i])] : masked[size_t(chosen[i])];
    if (o.renormalize) {
      float sum = 0.0f;
      for (float w : weights) sum += w;
      sum += 1e-20f;
      for (float& w : weights) w /= sum;
    }
    for (float& w : weights) w *= o.scaling;
    decision.add_token(chosen, weights);
  }
  return decision;
}

std::string RoutingMode::describe() const {
  switch (kind) {
    case Kind::kDefault: return "default";
    case Kind::kDense: return "dense";
    case Kind::kTopK: return "topk:" + std::to_string(k);
    case Kind::kThreshold: return fmt::format("threshold:{}", epsilon);
    case Kind::kThresholdTopK: return fmt::format("threshold-topk:{}", epsilon);
  }
  return "?";
}

RoutingMode parse_routing_mode(const std::string& text) {
  RoutingMode m;
  const auto number = [&](size_t at) {
    try {
      size_t used = 0;
      const double v = std::stod(text.substr(at), &used);
      if (used == text.size() - at) return v;
    } catch (const std::exception&) {
    }
    fail(ErrorCode::kInvalidArgument, "'{}' does not end in a number", text);
  };
  if (text == "default") return m;
  if (text == "dense") {
    m.kind = RoutingMode::Kind::kDense;
  } else if (text.rfind("topk:", 0) == 0) {
    m.kind = RoutingMode::Kind::kTopK;
    const double k = number(5);
    // Bounded before int(k): a huge K would not convert.
    MOE_CHECK(k >= 1 && k <= 65536 && k == std::floor(k), ErrorCode::kInvalidArgument,
              "topk:K needs a whole K from 1 to 65536, not '{}'", text);
    m.k = int(k);
  } else if (text.rfind("threshold:", 0) == 0) {
    m.kind = RoutingMode::Kind::kThreshold;
    m.epsilon = float(number(10));
  } else if (text.rfind("threshold-topk:", 0) == 0) {
    m.kind = RoutingMode::Kind::kThresholdTopK;
    m.epsilon = float(number(15));
  } else {
    fail(ErrorCode::kInvalidArgument, "unknown routing '{}' (default, dense, topk:K, threshold:EPS, threshold-topk:EPS)", text);
  }
  // NaN or inf (also a double too large for a float) would route every token nowhere or everywhere.
  MOE_CHECK(std::isfinite(m.epsilon) && m.epsilon >= 0, ErrorCode::kInvalidArgument,
            "the threshold must be a finite number of at least 0, not '{}'", text);
  return m;
}

RoutingDecision route_with_mode(const float* logits, int64_t num_tokens, int64_t num_experts, const RoutingMode& mode,
                                const TopKRouting& family) {
  using Kind = RoutingMode::Kind;
  if (mode.kind == Kind::kDefault) return route_top_k(logits, num_tokens, num_experts, family);
  TopKRouting options = family;
  if (mode.kind == Kind::kDense || mode.kind == Kind::kTopK) {
    options.top_k = mode.kind == Kind::kDense ? int(num_experts) : mode.k;
    return route_top_k(logits, num_tokens, num_experts, options);
  }
  // Threshold selection per token (the most probable expert when none passes).
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(num_tokens));
  std::vector<std::vector<float>> values(static_cast<size_t>(num_tokens));
  std::vector<float> probs(static_cast<size_t>(num_experts));
  int64_t chosen = 0;
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::copy_n(logits + t * num_experts, num_experts, probs.begin());
    cpu::softmax(probs.data(), num_experts);
    auto& token_ids = ids[size_t(t)];
    auto& token_values = values[size_t(t)];
    cpu::threshold_select(probs.data(), num_experts, mode.epsilon, token_ids, token_values);
    if (token_ids.empty()) {
      token_ids.assign(1, 0);
      token_values.assign(1, 0.0f);
      cpu::top_k(probs.data(), num_experts, 1, token_ids.data(), token_values.data());
    }
    chosen += int64_t(token_ids.size());
  }
  if (mode.kind == Kind::kThresholdTopK) {
    options.top_k = int(std::clamp<int64_t>((chosen + num_tokens / 2) / num_tokens, 1, num_experts));
    return route_top_k(logits, num_tokens, num_experts, options);
  }
  RoutingDecision decision;
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (family.renormalize) renormalize_largest_first(values[size_t(t)], family.renormalize_epsilon);
    decision.add_token(ids[size_t(t)], values[size_t(t)]);
  }
  return decision;
}

}  // namespace moe::model
