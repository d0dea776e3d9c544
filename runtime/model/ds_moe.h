#pragma once
// DS-MoE's mixture of attention heads and GeLU MLP experts (arXiv 2404.05567, as its public
// dense_moe implementation computes them): routers are linear with an f32 softmax, masked by
// the routing mode and not renormalised; attention expert e owns query heads kv * E + e, whose
// outputs are weighted before the output projection; MLP expert e is rows e*I..(e+1)*I of the
// fused c_fc and the matching columns of c_proj, whose one bias is added once.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/routing.h"
#include "runtime/model/weights.h"

namespace moe::model {

struct DsMoeLayer {
  std::vector<float> ln_1_bias, ln_2_bias;
  cpu::WeightMatrix attn_gate, mlp_gate;
  std::vector<cpu::WeightMatrix> fc;          // per expert [I, H] (views into c_fc)
  std::vector<std::vector<float>> fc_bias;    // per expert [I]
  std::vector<Tensor> proj;                   // per expert [H, I] (copied out of c_proj's columns)
  std::vector<cpu::WeightMatrix> proj_matrix;
  std::vector<float> proj_bias;
};

DsMoeLayer ds_moe_layer(const LayerWeights& w, const loading::ModelConfig& config);

// The routing mode in force: the one set at run time, else the config's inference_method.
RoutingMode ds_moe_mode(const loading::ModelConfig& config, const RoutingMode& requested);

// Routes x [n, hidden] through `gate` with `mode` (probabilities, not renormalised).
RoutingDecision ds_moe_route(const cpu::WeightMatrix& gate, const loading::ModelConfig& config, const RoutingMode& mode,
                             const float* x, int64_t n);

// Multiplies each head of heads [n, num_heads, head_dim] by its attention expert's weight.
void weight_attention_heads(const loading::ModelConfig& config, const RoutingDecision& routing, float* heads, int64_t n);

// out [n, hidden] = sum over chosen experts of w * proj_e(gelu(fc_e x + b_e)) + proj bias.
void ds_moe_mlp(const DsMoeLayer& layer, const loading::ModelConfig& config, const RoutingDecision& routing,
                const float* x, int64_t n, float* out);

}  // namespace moe::model
