#pragma once
// Guesses which experts the coming MoE layers will use, so their copies start early.
//  - next-layer gate: the next layer's router applied to this layer's input (the hidden state
//    changes little from one layer to the next, so its top-k is usually right);
//  - stacked gates (HOBBIT): the same for several layers ahead;
//  - routing predictors learnt from a profile trace (placement/predict/routing_predictor.h):
//    stats (transitions from this layer), history (this and the previous layer, the sequence's
//    recent experts, matched training windows), popularity;
//  - a combination: the union of two predictors' guesses.
#include <memory>
#include <string>
#include <vector>

#include "offload/cache/expert_key.h"
#include "placement/trace/trace.h"
#include "runtime/model/routing.h"
#include "runtime/model/transformer.h"

namespace moe::offload {

class Predictor {
 public:
  virtual ~Predictor() = default;
  // layer: the MoE layer (model layer index) now running; x [m, hidden]: its normalised input.
  // Returns experts of later layers, most wanted first.
  virtual std::vector<ExpertKey> predict(int layer, const float* x, int64_t m, const model::RoutingDecision& routing) = 0;
  virtual std::string name() const = 0;
};

// spec: "none" (returns null), "next-layer" (= "gate"), "stacked:D" (= "gate:D", D from 1 to
// 8), "stats[:D]", "history[:D]", "popularity[:D]" (D from 1 to 3; need `profile`), or two of
// them joined by "+" (the union, e.g. "next-layer+stats"). The learnt ones keep each sequence's
// own history (a cache starting again at position 0 is a new sequence). Throws
// moe::Error(kInvalidArgument) for anything else.
// `guesses`: experts guessed per token and layer (0: the model's experts per token).
std::unique_ptr<Predictor> make_predictor(const std::string& spec, const model::Transformer& transformer,
                                          const placement::Trace* profile, int guesses = 0);

// The experts the router of MoE layer `target` (a model layer index) ranks best for each token
// of x [m, hidden], `count` a token, best first: what the gate predictors guess and what
// `moe profile` records. out[t] is token t's list.
void gate_guesses(const model::Transformer& transformer, int target, const float* x, int64_t m, int count,
                  std::vector<std::vector<int32_t>>& out);

}  // namespace moe::offload
