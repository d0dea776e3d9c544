#include "runtime/model/ds_moe.h"

#include <cstring>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/combine.h"
#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"

namespace moe::model {
namespace {

std::vector<float> floats(const Tensor& t) {
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

}  // namespace

DsMoeLayer ds_moe_layer(const LayerWeights& w, const loading::ModelConfig& c) {
  const DsMoeWeights& d = w.ds;
  const int64_t h = c.hidden_size, I = c.moe_intermediate_size;
  DsMoeLayer l;
  l.ln_1_bias = floats(d.ln_1_bias);
  l.ln_2_bias = floats(d.ln_2_bias);
  l.attn_gate = cpu::weight_matrix(d.attn_gate.weight);
  l.mlp_gate = cpu::weight_matrix(d.mlp_gate.weight);
  const std::vector<float> fc_bias = floats(d.c_fc.bias);
  const size_t element = dtype_bytes(d.mlp_proj.weight.dtype(), 1);
  for (int e = 0; e < c.num_experts; ++e) {
    l.fc.push_back(cpu::weight_matrix(d.c_fc.weight.slice_rows(e * I, (e + 1) * I)));
    l.fc_bias.emplace_back(fc_bias.begin() + e * I, fc_bias.begin() + (e + 1) * I);
    // c_proj's columns e*I..(e+1)*I, copied into a contiguous [H, I] matrix of the same dtype.
    Tensor proj = Tensor::empty(d.mlp_proj.weight.dtype(), {h, I});
    const auto* src = d.mlp_proj.weight.data<std::byte>();
    auto* dst = proj.data<std::byte>();
    for (int64_t r = 0; r < h; ++r)
      std::memcpy(dst + size_t(r * I) * element, src + (size_t(r * c.num_experts * I) + size_t(e * I)) * element,
                  size_t(I) * element);
    l.proj_matrix.push_back(cpu::weight_matrix(proj));
    l.proj.push_back(std::move(proj));
  }
  l.proj_bias = floats(d.mlp_proj.bias);
  return l;
}

RoutingMode ds_moe_mode(const loading::ModelConfig& c, const RoutingMode& requested) {
  return requested.kind == RoutingMode::Kind::kDefault ? parse_routing_mode(c.ds_moe.default_routing) : requested;
}

RoutingDecision ds_moe_route(const cpu::WeightMatrix& gate, const loading::ModelConfig& c, const RoutingMode& mode,
                             const float* x, int64_t n) {
  std::vector<float> logits(static_cast<size_t>(n * c.num_experts));
  cpu::matmul(x, n, gate, logits.data());
  TopKRouting family;  // DS-MoE keeps the probabilities as they are
  family.top_k = c.num_experts;
  return route_with_mode(logits.data(), n, c.num_experts, mode, family);
}

void weight_attention_heads(const loading::ModelConfig& c, const RoutingDecision& routing, float* heads, int64_t n) {
  const int64_t E = c.num_experts, hd = c.head_dim;
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

void ds_moe_mlp(const DsMoeLayer& layer, const loading::ModelConfig& c, const RoutingDecision& routing, const float* x,
                int64_t n, float* out) {
  const int64_t h = c.hidden_size, I = c.moe_intermediate_size;
  std::vector<float> expert_out(size_t(routing.num_assignments() * h));
  std::vector<float> rows, act, result;
  for (const ExpertGroup& group : group_by_expert(routing)) {
    const auto e = size_t(group.expert);
    gather_rows(x, h, group, rows);
    const auto m = int64_t(group.tokens.size());
    act.resize(size_t(m * I));
    cpu::matmul(rows.data(), m, layer.fc[e], act.data(), layer.fc_bias[e].data());
    cpu::gelu_tanh(act.data(), m * I);
    for (int64_t r = 0; r < m; ++r) {  // the routing weight scales the activation, as c_proj(act * w)
      const float w = routing.weights[size_t(group.assignments[size_t(r)])];
      for (int64_t i = 0; i < I; ++i) act[size_t(r * I + i)] *= w;
    }
    result.resize(size_t(m * h));
    cpu::matmul(act.data(), m, layer.proj_matrix[e], result.data());
    scatter_rows(result.data(), h, group, expert_out.data());
  }
  // Per token: the experts' contributions in expert order, then the shared bias.
  std::fill_n(out, n * h, 0.0f);
  for (int64_t t = 0; t < n; ++t) {
    for (int32_t a = routing.offsets[size_t(t)]; a < routing.offsets[size_t(t) + 1]; ++a)
      cpu::add(out + t * h, expert_out.data() + int64_t{a} * h, h);
    cpu::add(out + t * h, layer.proj_bias.data(), h);
  }
}

}  // namespace moe::model
