#pragma once
// Predictors of routing from routing: which experts a token will choose `ahead` MoE layers
// later, from what it chose so far and what its sequence chose before. They learn from a
// training trace and are judged on another (predict_eval.h); the simulator and the executor's
// prefetcher call the same code.
//  - popularity: the training trace's most used experts of the target layer;
//  - stats: first-order transitions, P(expert f at layer l + D | the token's experts at l);
//  - history: a mixture of the transitions from this layer and the one before it, the token's
//    joint choice at this layer and at this and the previous layer together, the sequence's own
//    recent activations (fast- and slow-decaying counts), and the training trace's activation
//    windows that best match the sequence so far (MoE-Infinity's per-request activation
//    matrices); mixture weights per D fitted by EM on the training trace with each half's
//    counts scoring the other half, so they are out of sample;
//  - gate: the guesses `moe profile` recorded in the trace being replayed (the router of layer
//    l + D applied to layer l's input); it learns nothing.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "placement/trace/trace.h"

namespace moe::placement {

class RoutingPredictor {
 public:
  virtual ~RoutingPredictor() = default;
  virtual std::string name() const = 0;
  // The token's choices so far: `path` holds its layers up to and including `layer` (ascending;
  // gaps allowed, and a recorded path may hold the gate's guesses). Writes up to `count` experts
  // of layer `layer + ahead`, most likely first (fewer when the predictor knows no more).
  virtual void predict(int64_t sequence, std::span<const LayerRouting> path, int layer, int ahead, int count,
                       std::vector<int32_t>& out) = 0;
  // `token` (all its layers) is done: later tokens of its sequence may use it.
  virtual void observe(int64_t sequence, const TokenRecord& token) { (void)sequence, (void)token; }
  // Forgets every sequence's history (a fresh run).
  virtual void reset() {}
  // Forgets one sequence's history (it ended; its id is not used again).
  virtual void forget(int64_t sequence) { (void)sequence; }
  // What it learnt, in a line (history: its mixture weights); empty when there is nothing to say.
  virtual std::string describe() const { return {}; }
};

// True for the predictors that learn from a training trace (popularity, stats, history).
bool predictor_needs_training(const std::string& name);

// name: popularity, stats, history (learn from `train`) or gate (the replayed trace's recorded
// guesses; `train` unused). The model's shape is `train`'s (or, for gate, `model`'s). Throws
// moe::Error(kInvalidArgument) for another name or an empty training trace.
std::unique_ptr<RoutingPredictor> make_routing_predictor(const std::string& name, const Trace& train,
                                                         const ModelIdentity& model);

// The trace's sequences cut in two: the first half of its sequence ids (in order of appearance)
// for training, the rest for testing. Throws moe::Error(kInvalidArgument) for a trace of fewer
// than two sequences.
struct TraceSplit {
  Trace train, test;
  int64_t train_sequences = 0, test_sequences = 0;
};
TraceSplit split_by_sequence(const Trace& trace);

// The number of distinct sequence ids.
int64_t count_sequences(const Trace& trace);

}  // namespace moe::placement
