#pragma once
// DS-MoE's mixture of attention heads and GeLU MLP experts (arXiv 2404.05567, as its public
// dense_moe implementation computes them): routers are linear with an f32 softmax, masked by
// the routing mode and not renormalised; attention expert e owns query heads kv * E + e, whose
// outputs are weighted before the output projection; MLP expert e is rows e*I..(e+1)*I of the
// fused c_fc and the matching columns of c_proj (a GeLU GatedMlp at load), whose one bias is
// added once.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/routing.h"
#include "runtime/model/weights.h"

namespace moe::model {

// What a DS-MoE block adds to a Llama-style layer; its MLP experts are ordinary routed experts
// (GeLU GatedMlps, run by the transformer's ExpertRunner), their router the layer's router.
struct DsMoeLayer {
  std::vector<float> ln_1_bias, ln_2_bias;
  cpu::WeightMatrix attn_gate;
  std::vector<float> proj_bias;  // c_proj's bias, added once after the experts' weighted sum
};

DsMoeLayer ds_moe_layer(const LayerWeights& w);

// Routes x [n, hidden] through `gate` over its gate.rows experts with `mode` (probabilities, not
// renormalised).
RoutingDecision ds_moe_route(const cpu::WeightMatrix& gate, const RoutingMode& mode, const float* x, int64_t n);

// [n, num_heads]: 1 where the head's attention expert was chosen for the token.
std::vector<uint8_t> active_heads(const loading::ModelConfig& config, const RoutingDecision& routing);

// Multiplies each head of heads [n, num_heads, head_dim] by its attention expert's weight.
void weight_attention_heads(const loading::ModelConfig& config, const RoutingDecision& routing, float* heads, int64_t n);

}  // namespace moe::model
