#pragma once
// Out-of-sample judgement of routing predictors (`moe predict eval`): each predictor guesses
// `count` experts per token for the layers 1 to `max_ahead` ahead of every recorded layer of
// the test trace, and is scored against what the token really chose there. The statistical
// predictors learn from the training trace only; the gate predictor reads the test trace's
// recorded guesses; random is the expectation of a uniform guess, popularity the training
// trace's most used experts of the target layer.
#include <cstdint>
#include <string>
#include <vector>

#include "placement/trace/trace.h"

namespace moe::placement {

struct PredictionScore {
  int64_t events = 0;           // (token, layer, ahead) cases with a recorded target layer
  double guessed = 0, chosen = 0, hits = 0;  // experts guessed, really chosen, and both
  double precision() const { return guessed > 0 ? hits / guessed : 0; }
  double recall() const { return chosen > 0 ? hits / chosen : 0; }
};

struct PredictorScores {
  std::string name;
  bool available = true;               // gate: false when the test trace has no recorded guesses
  std::vector<PredictionScore> ahead;  // [ahead - 1]
  std::string learnt;                  // RoutingPredictor::describe()
};

struct PredictEvalOptions {
  int count = 0;      // experts guessed per token and layer; 0: default_guess_count(test)
  int max_ahead = 3;  // 1 to 3
};

// Throws moe::Error(kInvalidArgument) when the traces' shapes differ or one holds no tokens.
std::vector<PredictorScores> evaluate_predictors(const Trace& train, const Trace& test, const PredictEvalOptions& options);

// The experts a token chooses per layer in the trace, on average, rounded (at least 1): top-k for
// top-k routing, fewer than the nominal top-k under threshold routing.
int default_guess_count(const Trace& trace);

// True when some layer of the trace holds recorded gate guesses.
bool has_gate_guesses(const Trace& trace);

}  // namespace moe::placement
