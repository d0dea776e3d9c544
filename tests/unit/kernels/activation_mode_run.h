#pragma once
// The lossy activation modes' tests (int8_dot_test.cpp, bf16_dot_test.cpp): one matmul in a mode
// and on an instruction set, both put back after, and a bit-for-bit comparison.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace moe::cpu {

inline std::vector<float> run(Activations mode, Isa isa, const float* x, int64_t m, const WeightMatrix& w, const float* bias,
                              ThreadPool& pool) {
  const Isa isa_before = active_isa();
  const Activations mode_before = activations();
  set_isa(isa);
  set_activations(mode);
  std::vector<float> y(size_t(m * w.rows), NAN);
  matmul(x, m, w, y.data(), bias, pool);
  set_isa(isa_before);
  set_activations(mode_before);
  return y;
}

inline bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace moe::cpu
