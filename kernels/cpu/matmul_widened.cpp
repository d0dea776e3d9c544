// The matmul path of formats widened a row at a time (matmul_paths.h): MXFP4 and FP8 on CPUs
// without AVX-512, and FP8 whose blocks the AVX-512 tiles do not take.
#include <cmath>
#include <vector>

#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu::detail {
namespace {

// Lane c % 32 accumulates x[c] * w[c] with fused multiply-adds in increasing c (a partial last
// group fills the first lanes), then the fixed tree: the portable path's order exactly, whatever
// the clone's vector width.
__attribute__((target_clones("arch=x86-64-v3", "default"))) float dot_lanes(const float* __restrict x,
                                                                            const float* __restrict w, int64_t cols) {
  float lanes[kLanes] = {};
  const int64_t whole = cols / kLanes * kLanes;
  for (int64_t c = 0; c < whole; c += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = std::fma(x[c + l], w[c + l], lanes[l]);
  for (int64_t c = whole; c < cols; ++c) lanes[c - whole] = std::fma(x[c], w[c], lanes[c - whole]);
  return reduce_lanes(lanes);
}

}  // namespace

void rows_widened(const MatmulJob& job, int64_t r0, int64_t r1, void (*widen_row)(const WeightMatrix&, int64_t, float*)) {
  const WeightMatrix& w = *job.w;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    widen_row(w, r, row.data());
    for (int64_t t = 0; t < job.m; ++t) {
      float sum = dot_lanes(job.x + t * w.cols, row.data(), w.cols);
      if (job.bias) sum += job.bias[r];
      job.y[t * w.rows + r] = sum;
    }
  }
}

}  // namespace moe::cpu::detail
