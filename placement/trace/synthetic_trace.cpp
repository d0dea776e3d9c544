#include "placement/trace/synthetic_trace.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "runtime/core/error.h"

namespace moe::placement {

Trace synthetic_trace(const SyntheticRouting& o) {
  MOE_CHECK(o.layers > 0 && o.experts > 0 && o.top_k > 0 && o.top_k <= o.experts && o.sequences > 0 &&
                o.tokens_per_sequence > 0,
            ErrorCode::kInvalidArgument,
            "synthetic routing needs positive layers, experts, top-k (at most the experts), sequences and tokens");
  MOE_CHECK(o.skew >= 0 && std::isfinite(o.skew), ErrorCode::kInvalidArgument, "the skew must be a number >= 0, not {}", o.skew);
  MOE_CHECK(o.locality >= 0 && o.locality <= 1, ErrorCode::kInvalidArgument, "the locality must be in [0, 1], not {}",
            o.locality);
  std::mt19937_64 rng(o.seed);
  // Per layer: expert -> weight, the k-th most popular (a random expert) weighing 1 / k^skew.
  std::vector<std::vector<double>> weight(size_t(o.layers), std::vector<double>(size_t(o.experts)));
  for (auto& w : weight) {
    std::vector<int> rank(size_t(o.experts));
    std::iota(rank.begin(), rank.end(), 0);
    std::shuffle(rank.begin(), rank.end(), rng);
    for (int k = 0; k < o.experts; ++k) w[size_t(rank[size_t(k)])] = 1.0 / std::pow(double(k + 1), o.skew);
  }
  Trace t;
  t.model = {o.model_name, o.layers, o.experts, o.top_k};
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int64_t s = 0; s < o.sequences; ++s) {
    std::vector<std::vector<int32_t>> previous(size_t(o.layers));
    for (int64_t p = 0; p < o.tokens_per_sequence; ++p) {
      TokenRecord token{s, p, {}};
      for (int l = 0; l < o.layers; ++l) {
        std::vector<int32_t> chosen;
        if (!previous[size_t(l)].empty() && unit(rng) < o.locality) {
          chosen = previous[size_t(l)];
        } else {
          std::vector<double> w = weight[size_t(l)];
          for (int k = 0; k < o.top_k; ++k) {  // without replacement
            std::discrete_distribution<int> pick(w.begin(), w.end());
            const int e = pick(rng);
            chosen.push_back(e);
            w[size_t(e)] = 0;
          }
          std::sort(chosen.begin(), chosen.end());
        }
        previous[size_t(l)] = chosen;
        token.layers.push_back({l, chosen, std::vector<float>(chosen.size(), 1.0f / float(chosen.size())), {}});
      }
      t.tokens.push_back(std::move(token));
    }
  }
  return t;
}

}  // namespace moe::placement
