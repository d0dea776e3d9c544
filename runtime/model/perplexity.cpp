#include "runtime/model/perplexity.h"

#include <algorithm>
#include <cmath>

#include "runtime/core/error.h"

namespace moe::model {

double Perplexity::value() const { return predicted > 0 ? std::exp(nll / double(predicted)) : 0.0; }

Perplexity evaluate_perplexity(Transformer& model, std::span<const int32_t> ids, int window,
                               const std::function<void(int64_t)>& progress,
                               const std::function<void(std::span<const int32_t>, std::span<const float>)>& observe) {
  MOE_CHECK(window >= 2, ErrorCode::kInvalidArgument, "a perplexity window needs at least 2 tokens, not {}", window);
  MOE_CHECK(ids.size() >= 2, ErrorCode::kInvalidArgument, "perplexity needs at least 2 tokens of text");
  const int64_t vocab = model.config().vocab_size;
  Perplexity p;
  for (size_t begin = 0; begin + 1 < ids.size(); begin += size_t(window)) {
    const size_t end = std::min(ids.size(), begin + size_t(window));
    const std::span<const int32_t> chunk = ids.subspan(begin, end - begin);
    KvCache cache = model.make_cache(int64_t(chunk.size()));
    const std::vector<float> logits = model.forward(chunk, cache, LogitsWanted::kAll);
    for (size_t t = 0; t + 1 < chunk.size(); ++t) {
      const float* row = logits.data() + int64_t(t) * vocab;
      // log-softmax in double: max-shifted log-sum-exp.
      const double top = *std::max_element(row, row + vocab);
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - top);
      p.nll += std::log(sum) + top - double(row[chunk[t + 1]]);
      ++p.predicted;
    }
    if (observe) observe(chunk, logits);
    ++p.windows;
    if (progress) progress(int64_t(end));
  }
  return p;
}

}  // namespace moe::model
