#pragma once
// down(act(gate(x)) * up(x)) (act: hidden_act, SiLU by default) on rows of f32 activations, with weights in any matmul format; or
// without a gate DS-MoE's down(gelu_tanh(up(x) + up_bias)), or gpt-oss's expert
// down(clamped_swiglu(up(x) + up_bias)) + down_bias (up the fused gate_up; swiglu_limit > 0).
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/model/linear_backend.h"
#include "runtime/model/weights.h"

namespace moe::model {

struct GatedMlpMatrices {
  cpu::WeightMatrix gate, up, down;  // gate.data == nullptr: the GeLU form
  const float* up_bias = nullptr;    // [width()], the GeLU form's first-layer bias
  cpu::Activation act = cpu::Activation::kSilu;  // the gated form's
  const float* down_bias = nullptr;  // [hidden], the clamped form's
  float swiglu_alpha = 0, swiglu_limit = 0;  // the clamped form's (loading::GptOssConfig)
  bool gated() const { return gate.data != nullptr; }
  bool clamped() const { return swiglu_limit > 0; }
  int64_t width() const { return up.rows; }
};

GatedMlpMatrices matrices_of(const GatedMlp& mlp, cpu::Activation act = cpu::Activation::kSilu);

// x: [m, hidden] -> out: [m, hidden]. `scratch` grows as needed and is reused across calls. The
// products run on `backend` when given (dense and shared MLPs), else on the CPU kernels.
void run_gated_mlp(const GatedMlpMatrices& mlp, const float* x, int64_t m, float* out, std::vector<float>& scratch,
                   LinearBackend* backend = nullptr);

}  // namespace moe::model
