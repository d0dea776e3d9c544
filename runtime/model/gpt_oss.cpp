#include "runtime/model/gpt_oss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/activation.h"
#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"
#include "runtime/model/gated_mlp.h"

namespace moe::model {

RoutingDecision route_gpt_oss(const float* logits, int64_t n, int64_t num_experts, int top_k) {
  MOE_CHECK(top_k >= 1 && top_k <= num_experts, ErrorCode::kInvalidArgument, "top-k of {} is impossible with {} experts",
            top_k, num_experts);
  RoutingDecision decision;
  std::vector<int32_t> order(static_cast<size_t>(num_experts)), chosen(static_cast<size_t>(top_k));
  std::vector<float> weights(static_cast<size_t>(top_k));
  for (int64_t t = 0; t < n; ++t) {
    const float* row = logits + t * num_experts;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    // softmax over the chosen logits, the largest first (as torch.topk returns them)
    const float max = row[order[0]];
    float sum = 0.0f;
    for (int i = 0; i < top_k; ++i) {
      chosen[size_t(i)] = order[size_t(i)];
      weights[size_t(i)] = std::exp(row[order[size_t(i)]] - max);
      sum += weights[size_t(i)];
    }
    for (float& w : weights) w /= sum;
    decision.add_token(chosen, weights);
  }
  return decision;
}

void clamped_swiglu(const float* gate_up, int64_t n, int64_t width, float alpha, float limit, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const float* in = gate_up + t * 2 * width;
    float* o = out + t * width;
    for (int64_t i = 0; i < width; ++i) {
      const float g = std::min(in[2 * i], limit);  // NaN stays NaN, as torch's clamp
      const float u = std::clamp(in[2 * i + 1], -limit, limit);
      const float glu = g * cpu::sigmoid(g * alpha);
      o[i] = (u + 1.0f) * glu;
    }
  }
}

GptOssExpertRunner::GptOssExpertRunner(const ModelWeights& weights, const loading::ModelConfig& /*config*/) {
  experts_.resize(weights.layers.size());
  matrices_.resize(weights.layers.size());
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    const GptOssExpertWeights& w = weights.layers[l].moe.gpt_oss;
    for (int64_t e = 0; w.defined() && e < w.experts(); ++e) experts_[l].push_back(gpt_oss_expert(w, e));
    for (const GatedMlp& e : experts_[l]) matrices_[l].push_back(matrices_of(e));
  }
}

void GptOssExpertRunner::run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) {
  const auto& experts = matrices_.at(size_t(layer));
  for (const ExpertGroup& group : group_by_expert(routing)) {
    MOE_CHECK(group.expert >= 0 && size_t(group.expert) < experts.size(), ErrorCode::kInternal,
              "layer {} has no resident expert {}", layer, group.expert);
    gather_rows(x, hidden, group, rows_);
    results_.resize(rows_.size());
    run_gated_mlp(experts[size_t(group.expert)], rows_.data(), int64_t(group.tokens.size()), results_.data(), scratch_);
    scatter_rows(results_.data(), hidden, group, out);
  }
}

}  // namespace moe::model
