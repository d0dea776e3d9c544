#include "runtime/model/routing.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "kernels/cpu/router.h"
#include "runtime/core/error.h"

namespace moe::model {

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
    if (options.renormalize) {
      // Summed in descending-weight order, as torch sums the top-k tensor.
      float sum = 0.0f;
      for (float v : values) sum += v;
      sum += options.renormalize_epsilon;
      for (float& v : values) v /= sum;
    }
    decision.add_token(ids, values);
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
    MOE_CHECK(k >= 1 && k == double(int(k)), ErrorCode::kInvalidArgument, "topk:K needs a whole K of at least 1, not '{}'", text);
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
  MOE_CHECK(m.epsilon >= 0, ErrorCode::kInvalidArgument, "the threshold must not be negative: '{}'", text);
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
  std::vector<std::vector<float>> probs(size_t(num_tokens), std::vector<float>(static_cast<size_t>(num_experts)));
  std::vector<int32_t> ids;
  std::vector<float> values;
  int64_t passing = 0;
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::copy_n(logits + t * num_experts, num_experts, probs[size_t(t)].begin());
    cpu::softmax(probs[size_t(t)].data(), num_experts);
    cpu::threshold_select(probs[size_t(t)].data(), num_experts, mode.epsilon, ids, values);
    passing += std::max<int64_t>(1, int64_t(ids.size()));
  }
  if (mode.kind == Kind::kThresholdTopK) {
    options.top_k = int(std::clamp<int64_t>((passing + num_tokens / 2) / num_tokens, 1, num_experts));
    return route_top_k(logits, num_tokens, num_experts, options);
  }
  RoutingDecision decision;
  for (int64_t t = 0; t < num_tokens; ++t) {
    cpu::threshold_select(probs[size_t(t)].data(), num_experts, mode.epsilon, ids, values);
    if (ids.empty()) {  // keep the most probable expert
      ids.assign(1, 0);
      values.assign(1, 0.0f);
      cpu::top_k(probs[size_t(t)].data(), num_experts, 1, ids.data(), values.data());
    }
    if (family.renormalize) {
      // Summed in descending-probability order, as the top-k path sums.
      std::vector<float> sorted = values;
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      float sum = 0.0f;
      for (float v : sorted) sum += v;
      sum += family.renormalize_epsilon;
      for (float& v : values) v /= sum;
    }
    decision.add_token(ids, values);
  }
  return decision;
}

}  // namespace moe::model
