#include "runtime/model/gpt_oss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/activation.h"
#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"

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

namespace {

cpu::WeightMatrix expert_matrix(const Tensor& data, const Tensor& scales, int64_t e, int64_t rows, int64_t cols) {
  cpu::WeightMatrix m;
  m.rows = rows;
  m.cols = cols;
  if (scales.defined()) {  // MXFP4 blocks in place
    m.dtype = DType::kMxfp4;
    m.data = data.data<uint8_t>() + e * rows * (cols / 2);
    m.exponents = scales.data<uint8_t>() + e * rows * (cols / 32);
  } else {
    m.dtype = data.dtype();
    m.data = data.data<std::byte>() + size_t(e * rows * cols) * dtype_bytes(data.dtype(), 1);
  }
  return m;
}

}  // namespace

GptOssExpertRunner::GptOssExpertRunner(const ModelWeights& weights, const loading::ModelConfig& config)
    : alpha_(float(config.gpt_oss.swiglu_alpha)), limit_(float(config.gpt_oss.swiglu_limit)) {
  const int64_t E = config.num_experts, h = config.hidden_size, I = config.moe_intermediate_size;
  experts_.resize(weights.layers.size());
  biases_.resize(weights.layers.size());
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    const GptOssExpertWeights& w = weights.layers[l].moe.gpt_oss;
    if (!w.defined()) continue;
    std::vector<float>& bias = biases_[l];
    const Tensor gate_up_bias = w.gate_up_bias.to_f32(), down_bias = w.down_bias.to_f32();
    bias.assign(gate_up_bias.data<float>(), gate_up_bias.data<float>() + E * 2 * I);
    bias.insert(bias.end(), down_bias.data<float>(), down_bias.data<float>() + E * h);
    for (int64_t e = 0; e < E; ++e) {
      Expert x;
      x.gate_up = expert_matrix(w.gate_up, w.gate_up_scales, e, 2 * I, h);
      x.down = expert_matrix(w.down, w.down_scales, e, h, I);
      x.gate_up_bias = bias.data() + e * 2 * I;
      x.down_bias = bias.data() + E * 2 * I + e * h;
      experts_[l].push_back(x);
    }
  }
}

void GptOssExpertRunner::run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) {
  const auto& experts = experts_.at(size_t(layer));
  for (const ExpertGroup& group : group_by_expert(routing)) {
    MOE_CHECK(group.expert >= 0 && size_t(group.expert) < experts.size(), ErrorCode::kInternal,
              "layer {} has no resident expert {}", layer, group.expert);
    const Expert& e = experts[size_t(group.expert)];
    const int64_t m = int64_t(group.tokens.size()), width = e.down.cols;
    gather_rows(x, hidden, group, rows_);
    gate_up_.resize(size_t(m * 2 * width));
    act_.resize(size_t(m * width));
    results_.resize(rows_.size());
    cpu::matmul(rows_.data(), m, e.gate_up, gate_up_.data(), e.gate_up_bias);
    clamped_swiglu(gate_up_.data(), m, width, alpha_, limit_, act_.data());
    cpu::matmul(act_.data(), m, e.down, results_.data(), e.down_bias);
    scatter_rows(results_.data(), hidden, group, out);
  }
}

}  // namespace moe::model
