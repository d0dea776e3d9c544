#include "runtime/model/gated_mlp.h"

#include "kernels/cpu/activation.h"
#include "runtime/core/error.h"
#include "runtime/model/gpt_oss.h"
#include "runtime/model/weight_matrix.h"

namespace moe::model {

GatedMlpMatrices matrices_of(const GatedMlp& mlp, cpu::Activation act) {
  GatedMlpMatrices m;
  m.act = act;
  if (mlp.gated()) m.gate = matrix_of(mlp.gate);
  m.up = matrix_of(mlp.up);
  m.down = matrix_of(mlp.down);
  if (mlp.up.bias.defined()) {
    MOE_CHECK(mlp.up.bias.dtype() == DType::kF32, ErrorCode::kInternal, "an expert's bias is not f32");
    m.up_bias = mlp.up.bias.data<float>();
  }
  if (mlp.down.bias.defined()) {
    MOE_CHECK(mlp.clamped() && mlp.down.bias.dtype() == DType::kF32, ErrorCode::kInternal,
              "only gpt-oss's experts have a down bias of their own, in f32");
    m.down_bias = mlp.down.bias.data<float>();
  }
  m.swiglu_alpha = mlp.swiglu_alpha;
  m.swiglu_limit = mlp.swiglu_limit;
  return m;
}

void run_gated_mlp(const GatedMlpMatrices& mlp, const float* x, int64_t m, float* out, std::vector<float>& scratch,
                   LinearBackend* backend) {
  const int64_t width = mlp.width();
  if (mlp.clamped()) {  // as GptOssExpertRunner computes it, so the same bits
    scratch.resize(size_t(m * width + m * width / 2));
    float* gate_up = scratch.data();
    float* act = gate_up + m * width;
    linear(backend, x, m, mlp.up, gate_up, mlp.up_bias);
    clamped_swiglu(gate_up, m, width / 2, mlp.swiglu_alpha, mlp.swiglu_limit, act);
    linear(backend, act, m, mlp.down, out, mlp.down_bias);
    return;
  }
  if (!mlp.gated()) {
    scratch.resize(size_t(m * width));
    linear(backend, x, m, mlp.up, scratch.data(), mlp.up_bias);
    cpu::gelu_tanh(scratch.data(), m * width);
    linear(backend, scratch.data(), m, mlp.down, out);
    return;
  }
  scratch.resize(size_t(2 * m * width));
  float* gate = scratch.data();
  float* up = gate + m * width;
  linear_same_input(backend, x, m, {{&mlp.gate, gate}, {&mlp.up, up}});
  cpu::act_mul(mlp.act, gate, up, gate, m * width);
  linear(backend, gate, m, mlp.down, out);
}

}  // namespace moe::model
