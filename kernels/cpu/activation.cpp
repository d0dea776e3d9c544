#include "kernels/cpu/activation.h"

namespace moe::cpu {

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

void act_mul(Activation act, const float* gate, const float* up, float* out, int64_t n) {
  if (act == Activation::kSilu) return silu_mul(gate, up, out, n);
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    switch (act) {
      case Activation::kGelu: gelu(&g, 1); break;
      case Activation::kGeluTanh: gelu_tanh(&g, 1); break;
      case Activation::kRelu: g = g > 0 ? g : 0.0f; break;
      case Activation::kQuickGelu: g = g * sigmoid(1.702f * g); break;
      case Activation::kSilu: break;
    }
    out[i] = g * up[i];
  }
}

void gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void gelu_tanh(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

}  // namespace moe::cpu
