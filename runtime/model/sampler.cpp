#include "runtime/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "runtime/core/error.h"

namespace moe::model {

int32_t argmax(std::span<const float> logits) {
  MOE_ASSERT(!logits.empty());
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  MOE_CHECK(options.temperature >= 0 && std::isfinite(options.temperature), ErrorCode::kInvalidArgument,
            "temperature must be a non-negative number, not {}", options.temperature);
  MOE_CHECK(options.top_p > 0 && options.top_p <= 1, ErrorCode::kInvalidArgument,
            "top-p must be in (0, 1], not {}", options.top_p);
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature == 0.0) return argmax(logits);
  const double max_logit = logits[static_cast<size_t>(argmax(logits))];
  std::vector<double> probs(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    probs[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / options_.temperature);
    total += probs[i];
  }
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  // Descending probability, lower id first on ties, so the nucleus is well defined.
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return probs[size_t(a)] > probs[size_t(b)]; });
  double kept = 0;
  size_t n = 0;
  while (n < order.size()) {
    kept += probs[size_t(order[n])];
    ++n;
    if (kept >= options_.top_p * total) break;
  }
  double r = uniform() * kept;
  for (size_t i = 0; i < n; ++i) {
    r -= probs[size_t(order[i])];
    if (r < 0) return order[i];
  }
  return order[n - 1];
}

}  // namespace moe::model
