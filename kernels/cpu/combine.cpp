#include "kernels/cpu/combine.h"

namespace moe::cpu {

void axpy(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float product = a * x[i];
    y[i] += product;
  }
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace moe::cpu
