#pragma once
// down(silu(gate(x)) * up(x)) on rows of f32 activations, with weights in any matmul format.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/model/weights.h"

namespace moe::model {

struct GatedMlpMatrices {
  cpu::WeightMatrix gate, up, down;
  int64_t width() const { return gate.rows; }
};

GatedMlpMatrices matrices_of(const GatedMlp& mlp);

// x: [m, hidden] -> out: [m, hidden]. `scratch` grows as needed and is reused across calls.
void run_gated_mlp(const GatedMlpMatrices& mlp, const float* x, int64_t m, float* out, std::vector<float>& scratch);

}  // namespace moe::model
