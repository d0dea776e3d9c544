#pragma once
// The logits a test compares between two ways of running a model: the prompt's prefill at every
// position, then each greedy decode step's.
#include <algorithm>
#include <span>
#include <vector>

#include "runtime/model/transformer.h"

namespace moe::testing {

inline std::vector<float> prefill_and_greedy_logits(model::Transformer& t, std::span<const int32_t> prompt, int steps) {
  model::KvCache cache = t.make_cache(int64_t(prompt.size()) + steps + 1);
  std::vector<float> all = t.forward(prompt, cache, model::LogitsWanted::kAll);
  const int64_t vocab = t.config().vocab_size;
  std::vector<float> last(all.end() - vocab, all.end());
  for (int step = 0; step < steps; ++step) {
    const int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    last = t.forward(std::span(&next, 1), cache);
    all.insert(all.end(), last.begin(), last.end());
  }
  return all;
}

}  // namespace moe::testing
