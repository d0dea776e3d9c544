#pragma once
// Where the dense layers' big matrix products run: attention's projections, dense and shared
// MLPs and the LM head (routers stay on the CPU kernels, so routing decisions are the CPU's).
// The transformer uses the CPU kernels unless a backend is set; a GPU backend keeps resident
// copies of those weights in device memory and agrees with the CPU to rounding.
#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace moe::model {

class LinearBackend {
 public:
  virtual ~LinearBackend() = default;
  // y [m, w.rows] = x [m, w.cols] W^T (+ bias [w.rows] when not null); host pointers.
  virtual void matmul(const float* x, int64_t m, const cpu::WeightMatrix& w, float* y, const float* bias) = 0;
};

// backend->matmul, or the CPU kernel without one.
inline void linear(LinearBackend* backend, const float* x, int64_t m, const cpu::WeightMatrix& w, float* y,
                   const float* bias = nullptr) {
  if (backend) backend->matmul(x, m, w, y, bias);
  else cpu::matmul(x, m, w, y, bias);
}

}  // namespace moe::model
