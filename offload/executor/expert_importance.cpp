#include "offload/executor/expert_importance.h"

#include <algorithm>
#include <numeric>

namespace moe::offload {

std::vector<float> hobbit_importance(const model::RoutingDecision& routing) {
  std::vector<float> importance(routing.weights.size(), 0.0f);
  std::vector<int32_t> order;
  for (int64_t t = 0; t < routing.num_tokens(); ++t) {
    const int32_t begin = routing.offsets[size_t(t)], end = routing.offsets[size_t(t) + 1];
    order.resize(size_t(end - begin));
    std::iota(order.begin(), order.end(), begin);
    // Heaviest first; equal weights keep expert-index order.
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return routing.weights[size_t(a)] > routing.weights[size_t(b)]; });
    double total = 0;
    for (int32_t a : order) total += std::max(0.0f, routing.weights[size_t(a)]);
    double above = 0;
    for (int32_t a : order) {
      importance[size_t(a)] = total > 0 ? float(std::clamp(1.0 - above / total, 0.0, 1.0)) : 1.0f;
      above += std::max(0.0f, routing.weights[size_t(a)]);
    }
  }
  return importance;
}

}  // namespace moe::offload
