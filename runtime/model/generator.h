#pragma once
// Prefill then decode: feeds the prompt, samples new tokens one at a time, hands each to a
// callback as it is produced, and measures the phases.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/model/sampler.h"
#include "runtime/model/transformer.h"

namespace moe::model {

struct GenerationOptions {
  int max_new_tokens = 32;
  SamplingOptions sampling;
  std::vector<int32_t> stop_tokens;  // generation ends after producing one of these
  // Each step's logits before its token is sampled (`moe run --logits-out`).
  std::function<void(std::span<const float> logits)> on_logits;
  // Several processes: the sampled token goes through this and generation continues with what
  // it returns (rank 0's token, broadcast), so ranks can never diverge.
  std::function<int32_t(int32_t token)> agree_token;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // from the first sampled token to the last
  uint64_t peak_resident_bytes = 0;
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? double(prompt_tokens) / prefill_seconds : 0; }
  // Decode steps run = generated tokens - 1 (the first comes from the prefill's logits).
  double decode_tokens_per_second() const {
    return decode_seconds > 0 && generated_tokens > 1 ? double(generated_tokens - 1) / decode_seconds : 0;
  }
};

struct Generation {
  std::vector<int32_t> tokens;  // generated tokens only
  GenerationStats stats;
  std::string stop_reason;      // "length" or "stop_token"
  std::vector<float> last_logits;
};

// Called with each new token; returning false stops generation early.
using TokenCallback = std::function<bool(int32_t token)>;

Generation generate(Transformer& model, std::span<const int32_t> prompt, const GenerationOptions& options,
                    const TokenCallback& on_token = {});

}  // namespace moe::model
