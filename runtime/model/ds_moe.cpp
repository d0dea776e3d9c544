#include "runtime/model/ds_moe.h"

#include "runtime/core/error.h"

namespace moe::model {
namespace {

std::vector<float> floats(const Tensor& t) {
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

}  // namespace

DsMoeLayer ds_moe_layer(const LayerWeights& w) {
  DsMoeLayer l;
  l.ln_1_bias = floats(w.ds.ln_1_bias);
  l.ln_2_bias = floats(w.ds.ln_2_bias);
  l.attn_gate = cpu::weight_matrix(w.ds.attn_gate.weight);
  l.proj_bias = floats(w.ds.mlp_proj_bias);
  return l;
}

RoutingDecision ds_moe_route(const cpu::WeightMatrix& gate, const RoutingMode& mode, const float* x, int64_t n) {
  std::vector<float> logits(static_cast<size_t>(n * gate.rows));
  cpu::matmul(x, n, gate, logits.data());
  TopKRouting family;  // DS-MoE keeps the probabilities as they are
  family.top_k = int(gate.rows);
  return route_with_mode(logits.data(), n, gate.rows, mode, family);
}

std::vector<uint8_t> active_heads(const loading::ModelConfig& c, const RoutingDecision& routing) {
  const int64_t n = routing.num_tokens(), E = c.ds_moe.attention_experts;
  std::vector<uint8_t> mask(size_t(n * c.num_heads), 0);
  for (int64_t t = 0; t < n; ++t)
    for (int32_t e : routing.experts_of(t))
      for (int64_t head = e; head < c.num_heads; head += E) mask[size_t(t * c.num_heads + head)] = 1;
  return mask;
}

void weight_attention_heads(const loading::ModelConfig& c, const RoutingDecision& routing, float* heads, int64_t n) {
  const int64_t E = c.ds_moe.attention_experts, hd = c.head_dim;
  std::vector<float> w(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    std::fill(w.begin(), w.end(), 0.0f);
    const auto experts = routing.experts_of(t);
    const auto weights = routing.weights_of(t);
    for (size_t i = 0; i < experts.size(); ++i) w[size_t(experts[i])] = weights[i];
    for (int64_t head = 0; head < c.num_heads; ++head) {
      float* row = heads + (t * c.num_heads + head) * hd;
      const float g = w[size_t(head % E)];
      for (int64_t i = 0; i < hd; ++i) row[i] *= g;
    }
  }
}

}  // namespace moe::model
