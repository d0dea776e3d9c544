#pragma once
// A router trace in memory: which experts each token chose in each MoE layer, with weights.
// A token may choose a variable number of experts (threshold routing) and may lack some layers
// (gaps in recorded data). Readers, writers and importers live beside this file.
#include <cstdint>
#include <string>
#include <vector>

namespace moe::placement {

struct ModelIdentity {
  std::string name;          // e.g. "mistralai/Mixtral-8x7B-Instruct-v0.1"
  int num_layers = 0;        // MoE layers recorded
  int num_experts = 0;       // routed experts per layer
  int top_k = 0;             // nominal experts per token (0 when it varies)
};

// What a hidden-state predictor guessed from this layer's input for a later layer: the router
// of layer + ahead applied to the input of this layer (`moe profile` records ahead 1 to 3), its
// experts ranked by logit, best first (a few more than top-k, so a caller may take more).
struct GateGuess {
  int32_t ahead = 1;
  std::vector<int32_t> experts;
};

// One (token, layer) routing decision.
struct LayerRouting {
  int32_t layer = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;  // same length as experts
  std::vector<GateGuess> guesses;  // empty unless recorded (ascending ahead, each once)
};

struct TokenRecord {
  int64_t sequence_id = 0;  // the request / problem the token belongs to
  int64_t position = 0;     // position within its sequence
  std::vector<LayerRouting> layers;  // sorted by layer; a missing layer is a gap
};

struct Trace {
  ModelIdentity model;
  std::vector<TokenRecord> tokens;  // in recorded order
  int64_t gaps = 0;                 // (token, layer) pairs absent from the source
};

}  // namespace moe::placement
