#include "kernels/cpu/norm.h"

#include <cmath>

namespace moe::cpu {

void rms_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, float eps) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * d;
    float* oi = out + i * d;
    float sum = 0.0f;
    for (int64_t j = 0; j < d; ++j) sum += xi[j] * xi[j];
    const float inv = 1.0f / std::sqrt(sum / float(d) + eps);
    for (int64_t j = 0; j < d; ++j) oi[j] = weight ? (xi[j] * inv) * weight[j] : xi[j] * inv;
  }
}

void layer_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, const float* bias, float eps) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * d;
    float* oi = out + i * d;
    float mean = 0.0f;
    for (int64_t j = 0; j < d; ++j) mean += xi[j];
    mean /= float(d);
    float var = 0.0f;
    for (int64_t j = 0; j < d; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    var /= float(d);
    const float inv = 1.0f / std::sqrt(var + eps);
    for (int64_t j = 0; j < d; ++j) {
      float v = (xi[j] - mean) * inv;
      if (weight) v *= weight[j];
      if (bias) v += bias[j];
      oi[j] = v;
    }
  }
}

}  // namespace moe::cpu
