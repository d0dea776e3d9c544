#pragma once
// Perplexity of a model on a token sequence, computed by the engine: the sequence is cut into
// windows of `window` tokens, each run from an empty cache, and every position but a window's
// last predicts the next token.
#include <cstdint>
#include <functional>
#include <span>

#include "runtime/model/transformer.h"

namespace moe::model {

struct Perplexity {
  int64_t predicted = 0;    // tokens whose probability was scored
  double nll = 0;           // summed negative log-likelihood, nats
  int64_t windows = 0;
  double value() const;     // exp(nll / predicted)
};

// `progress(tokens_done)` is called after each window when given, and `observe(window, logits)`
// with each window's tokens and logits [window size, vocab] (a logit comparison).
Perplexity evaluate_perplexity(
    Transformer& model, std::span<const int32_t> ids, int window, const std::function<void(int64_t)>& progress = {},
    const std::function<void(std::span<const int32_t>, std::span<const float>)>& observe = {});

}  // namespace moe::model
