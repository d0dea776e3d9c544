#pragma once
// gpt-oss's MoE block as transformers' GptOssMLP computes it: the router (a biased linear, the
// top-k of its logits weighted by a softmax over the chosen logits) and the routed experts (a
// fused, biased gate_up product whose columns interleave gate and up, the clamped SwiGLU of
// loading::GptOssConfig, a biased down product), over bf16/f32 copies or MXFP4 blocks in place.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/expert_runner.h"
#include "runtime/model/gated_mlp.h"
#include "runtime/model/weights.h"

namespace moe::model {

// logits [n, num_experts] (the router's bias added) -> for each token the top_k largest (the
// lower index first among equals), weighted by softmax over those k logits, sorted by expert.
RoutingDecision route_gpt_oss(const float* logits, int64_t n, int64_t num_experts, int top_k);

// gate_up [n, 2 * width], gate at even and up at odd columns -> out [n, width]:
//   g = min(gate, limit), u = clamp(up, -limit, limit), out = (u + 1) * g * sigmoid(alpha * g)
void clamped_swiglu(const float* gate_up, int64_t n, int64_t width, float alpha, float limit, float* out);

// The resident runner of gpt-oss's experts (ModelWeights' MoeWeights::gpt_oss), one expert at a
// time on the CPU kernels: each cut by gpt_oss_expert and run by run_gated_mlp (gated_mlp.h),
// as the offloading executor runs them.
class GptOssExpertRunner final : public ExpertRunner {
 public:
  GptOssExpertRunner(const ModelWeights& weights, const loading::ModelConfig& config);
  void run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) override;

 private:
  std::vector<std::vector<GatedMlp>> experts_;  // [layer][expert]: views, biases in f32
  std::vector<std::vector<GatedMlpMatrices>> matrices_;
  std::vector<float> rows_, results_, scratch_;
};

}  // namespace moe::model
