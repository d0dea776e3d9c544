#pragma once
// MoE++'s routing and zero-computation experts (arXiv 2410.07348, as the released model computes
// them): a router of one or two layers plus the gating residual, softmax top-2 with the zero
// expert's weight dropped before renormalising, experts fed top_k * x, and the constant, copy and
// zero experts computed here; the FFN experts go through the expert runner like any other.
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/routing.h"
#include "runtime/model/weights.h"

namespace moe::model {

struct MoePlusPlusLayer {
  cpu::WeightMatrix router, router2, gate_map;
  std::vector<std::vector<float>> constants;  // f32 copies of each constant expert's vector
  std::vector<cpu::WeightMatrix> mixes;
};

MoePlusPlusLayer moe_plus_plus_layer(const MoeWeights& weights, const loading::ModelConfig& config);

// Router logits [n, router_outputs] of x [n, hidden]; adds gate_map(residual) when `residual`
// holds the previous MoE layer's logits, then leaves these logits in it.
void moe_plus_plus_logits(const MoePlusPlusLayer& layer, const loading::ModelConfig& config, const float* x, int64_t n,
                          std::vector<float>& residual, float* logits);

struct MoePlusPlusRouting {
  RoutingDecision ffn;  // FFN experts only (what the expert runner computes)
  std::vector<std::vector<std::pair<int32_t, float>>> zero_computation;  // per token: (expert, weight)
};
MoePlusPlusRouting moe_plus_plus_route(const loading::ModelConfig& config, const float* logits, int64_t n);

// The factor the experts' input is multiplied by (top_k, or 1 with mixtral gating / no scaling).
float moe_plus_plus_input_scale(const loading::ModelConfig& config);

// Adds the constant and copy experts' weighted outputs for xs [n, hidden] (already scaled) to
// out, in expert order after the FFN experts' (the zero expert adds nothing).
void add_zero_computation_experts(const MoePlusPlusLayer& layer, const loading::ModelConfig& config,
                                  const MoePlusPlusRouting& routing, const float* xs, int64_t n, float* out);

}  // namespace moe::model
