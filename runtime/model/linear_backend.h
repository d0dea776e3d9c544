#pragma once
// Where the dense layers' big matrix products run: attention's projections, dense and shared
// MLPs and the LM head (routers stay on the CPU kernels, so routing decisions are the CPU's).
// The transformer uses the CPU kernels unless a backend is set; a GPU backend keeps resident
// copies of those weights in device memory and agrees with the CPU to rounding.
#include <cstdint>
#include <initializer_list>
#include <span>

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

// Several products of one x (gate and up; q, k and v): on the CPU in one call (x prepared once,
// one hand-off to the threads; the same bits as one matmul each), on a backend one by one.
inline void linear_same_input(LinearBackend* backend, const float* x, int64_t m,
                              std::initializer_list<cpu::SameInputProduct> products) {
  if (!backend) return cpu::matmul_same_input(x, m, std::span(products.begin(), products.size()));
  for (const cpu::SameInputProduct& p : products) backend->matmul(x, m, *p.w, p.y, p.bias);
}

}  // namespace moe::model
