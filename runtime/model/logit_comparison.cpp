#include "runtime/model/logit_comparison.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "runtime/core/error.h"
#include "runtime/model/sampler.h"

namespace moe::model {
namespace {

// log-softmax of a row in double (max-shifted log-sum-exp), as the perplexity computes it.
void log_softmax(std::span<const float> row, std::vector<double>& out) {
  const double top = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (float v : row) sum += std::exp(double(v) - top);
  const double log_sum = std::log(sum) + top;
  out.resize(row.size());
  for (size_t v = 0; v < row.size(); ++v) out[v] = double(row[v]) - log_sum;
}

}  // namespace

double LogitAgreement::perplexity() const { return scored ? std::exp(nll / double(scored)) : 0; }
double LogitAgreement::reference_perplexity() const { return scored ? std::exp(reference_nll / double(scored)) : 0; }

void LogitComparison::add(std::span<const int32_t> tokens, int64_t first, std::span<const float> logits) {
  const int64_t n = int64_t(tokens.size()), vocab = reference_.config().vocab_size;
  MOE_CHECK(first >= 0 && first < n && int64_t(logits.size()) == (n - first) * vocab, ErrorCode::kInternal,
            "a logit comparison got {} logits for positions {}..{} of a vocabulary of {}", logits.size(), first, n, vocab);
  KvCache cache = reference_.make_cache(n);
  const cpu::ScopedActivations exact(cpu::Activations::kExact);  // the reference is the exact mode's
  const std::vector<float> all = reference_.forward(tokens, cache, LogitsWanted::kAll);
  std::vector<double> p, q;
  for (int64_t t = first; t < n; ++t) {
    const std::span<const float> ref(all.data() + t * vocab, size_t(vocab));
    const std::span<const float> got(logits.data() + (t - first) * vocab, size_t(vocab));
    log_softmax(ref, p);
    log_softmax(got, q);
    double kl = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      kl += std::exp(p[size_t(v)]) * (p[size_t(v)] - q[size_t(v)]);
      result_.max_abs_diff = std::max(result_.max_abs_diff, std::fabs(double(got[size_t(v)]) - double(ref[size_t(v)])));
    }
    result_.kl_sum += std::max(kl, 0.0);  // rounding can leave a hair below zero
    result_.top1_same += argmax(got) == argmax(ref);
    ++result_.positions;
    if (t + 1 < n) {
      const auto next = size_t(tokens[size_t(t + 1)]);
      result_.nll -= q[next];
      result_.reference_nll -= p[next];
      ++result_.scored;
    }
  }
}

}  // namespace moe::model
