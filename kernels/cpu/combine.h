#pragma once
// Accumulations of expert outputs and residual branches. Products are rounded before the add
// (no fused multiply-add), as transformers computes w * y then index_add.
#include <cstdint>

namespace moe::cpu {

void axpy(float* y, const float* x, float a, int64_t n);  // y += a * x
void add(float* y, const float* x, int64_t n);            // y += x

}  // namespace moe::cpu
