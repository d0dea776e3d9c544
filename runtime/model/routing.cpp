#include "runtime/model/routing.h"

#include <algorithm>
#include <numeric>

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

}  // namespace moe::model
