#pragma once
// Elementwise activations in f32.
#include <cmath>
#include <cstdint>

namespace moe::cpu {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// The gated MLPs' activations transformers' ACT2FN offers these families.
enum class Activation { kSilu, kGelu, kGeluTanh, kRelu, kQuickGelu };

// out = act(gate) * up; out may alias gate or up.
void act_mul(Activation act, const float* gate, const float* up, float* out, int64_t n);
// out = silu(gate) * up (SwiGLU); out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
// GeLU with the exact erf, in place.
void gelu(float* x, int64_t n);
// GeLU's tanh approximation, in place.
void gelu_tanh(float* x, int64_t n);

}  // namespace moe::cpu
