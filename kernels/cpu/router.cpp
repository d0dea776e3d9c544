#include "kernels/cpu/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe::cpu {

void softmax(float* x, int64_t n) {
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

void softmax_rows(float* x, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) softmax(x + i * n, n);
}

void top_k(const float* scores, int64_t n, int k, int32_t* ids, float* values) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  for (int i = 0; i < k; ++i) {
    ids[i] = order[size_t(i)];
    values[i] = scores[order[size_t(i)]];
  }
}

void threshold_select(const float* probs, int64_t n, float eps, std::vector<int32_t>& ids, std::vector<float>& values) {
  ids.clear();
  values.clear();
  for (int64_t i = 0; i < n; ++i) {
    if (probs[i] * float(n) > eps) {
      ids.push_back(static_cast<int32_t>(i));
      values.push_back(probs[i]);
    }
  }
}

void renormalize(float* w, int k) {
  float sum = 0.0f;
  for (int i = 0; i < k; ++i) sum += w[i];
  for (int i = 0; i < k; ++i) w[i] /= sum;
}

}  // namespace moe::cpu
