#pragma once
// Routing made up for planning a model nobody here has run (DeepSeek-V3 on one GPU): each MoE
// layer ranks its experts by a popularity drawn once (a random permutation, Zipf weights of
// exponent `skew`: 0 is uniform), and every token chooses top_k distinct experts by those weights,
// with probability `locality` repeating its sequence's previous token's choice at that layer.
// A stand-in with the right shape, not the model's routing: plans from recorded routing (`moe
// profile`) are the real thing.
#include <cstdint>
#include <string>

#include "placement/trace/trace.h"

namespace moe::placement {

struct SyntheticRouting {
  std::string model_name;
  int layers = 0, experts = 0, top_k = 0;
  int64_t sequences = 4, tokens_per_sequence = 256;
  double skew = 1.0;      // Zipf exponent of the experts' popularity within a layer
  double locality = 0.0;  // chance that a token repeats its predecessor's choice at a layer
  uint64_t seed = 0;
};

// Throws moe::Error(kInvalidArgument) for non-positive sizes, top_k above the experts, a
// negative skew or a locality outside [0, 1].
Trace synthetic_trace(const SyntheticRouting& options);

}  // namespace moe::placement
