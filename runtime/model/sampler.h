#pragma once
// Picks the next token from logits: greedy when temperature is 0, else temperature + nucleus
// (top-p) sampling with a seeded generator whose stream is the same on every platform.
#include <cstdint>
#include <random>
#include <span>

namespace moe::model {

struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy (argmax, lowest id on ties)
  double top_p = 1.0;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int32_t sample(std::span<const float> logits);

 private:
  double uniform();  // [0, 1) from the top 53 bits: identical across standard libraries
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace moe::model
