#pragma once
// Row normalisations in f32, as transformers computes them. `out` may alias `x`.
#include <cstdint>

namespace moe::cpu {

// out = x * rsqrt(mean(x^2) + eps) * weight (weight may be null: no scale).
void rms_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, float eps);
// out = (x - mean) * rsqrt(var + eps) * weight + bias (weight, bias may be null).
void layer_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, const float* bias, float eps);

}  // namespace moe::cpu
