#pragma once
// Guesses which experts the coming MoE layers will use, so their copies start early.
//  - next-layer gate: the next layer's router applied to this layer's input (the hidden state
//    changes little from one layer to the next, so its top-k is usually right);
//  - stacked gates (HOBBIT): the same for several layers ahead;
//  - trace statistics: transition counts layer l -> l + 1 from a recorded trace;
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

// spec: "none" (returns null), "next-layer", "stacked:D", "stats" (needs `profile`),
// "next-layer+stats". Throws moe::Error(kInvalidArgument) for anything else.
std::unique_ptr<Predictor> make_predictor(const std::string& spec, const model::Transformer& transformer,
                                          const placement::Trace* profile);

}  // namespace moe::offload
