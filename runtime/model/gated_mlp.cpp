#include "runtime/model/gated_mlp.h"

#include "kernels/cpu/activation.h"

namespace moe::model {

GatedMlpMatrices matrices_of(const GatedMlp& mlp) {
  return {cpu::weight_matrix(mlp.gate.weight), cpu::weight_matrix(mlp.up.weight), cpu::weight_matrix(mlp.down.weight)};
}

void run_gated_mlp(const GatedMlpMatrices& mlp, const float* x, int64_t m, float* out, std::vector<float>& scratch) {
  const int64_t width = mlp.width();
  scratch.resize(size_t(2 * m * width));
  float* gate = scratch.data();
  float* up = gate + m * width;
  cpu::matmul(x, m, mlp.gate, gate);
  cpu::matmul(x, m, mlp.up, up);
  cpu::silu_mul(gate, up, gate, m * width);
  cpu::matmul(gate, m, mlp.down, out);
}

}  // namespace moe::model
