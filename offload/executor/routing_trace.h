#pragma once
// Routing hooks that connect the forward pass with router traces: the recorder writes each
// token's choices in every MoE layer (`moe profile`, `moe run --trace-out`); the replayer
// forces the router's choices from a recorded trace (`moe run --replay-trace`), so synthetic
// weights of a real model's shape run with real routing. Each keeps a pointer to the model's
// config, which must outlive it.
#include <filesystem>
#include <memory>
#include <vector>

#include "placement/trace/trace_io.h"
#include "runtime/model/sequence_ids.h"
#include "runtime/model/transformer.h"

namespace moe::offload {

class TraceRecorder {
 public:
  TraceRecorder(const std::filesystem::path& path, const loading::ModelConfig& config, const std::string& model_name,
                const std::string& source);
  model::RoutingHook hook();
  // Tokens of later forward calls belong to this sequence (a prompt's index).
  void begin_sequence(int64_t id) { sequence_ = id; }
  void finish();  // flushes the last tokens and renames the file into place
  int64_t tokens() const { return written_; }
  // Attaches gate guesses to the current forward call's token `token` at the MoE layer its hook
  // saw last (GateGuessRecorder calls it between the hook and the experts).
  void add_guesses(int64_t token, std::vector<placement::GateGuess> guesses);

 private:
  void flush();
  std::unique_ptr<placement::TraceWriter> writer_;
  const loading::ModelConfig* config_;
  int first_sparse_ = -1;
  int64_t sequence_ = 0, written_ = 0;
  std::vector<placement::TokenRecord> pending_;  // the current forward call's tokens
};

// What the routers of the next `depth` MoE layers after `layer` rank best for each token of its
// input x [m, hidden], `count` experts each: out[t] holds token t's guesses, nearest layer first.
void gate_guesses_ahead(const model::Transformer& transformer, int layer, const float* x, int64_t m, int depth, int count,
                        std::vector<std::vector<placement::GateGuess>>& out);

// An expert runner that, before handing a MoE layer to `inner`, applies the routers of the next
// `depth` MoE layers to the layer's input and records each token's best `count` experts of each
// in the recorder's trace: what the next-layer and stacked-gate predictors guess, beside what
// the model then chose. Install the recorder's hook first; all three must outlive its use.
class GateGuessRecorder final : public model::ExpertRunner {
 public:
  GateGuessRecorder(const model::Transformer& transformer, model::ExpertRunner& inner, TraceRecorder& recorder, int depth,
                    int count);
  void run(int layer, const float* x, int64_t hidden, const model::RoutingDecision& routing, float* out) override;

 private:
  const model::Transformer& transformer_;
  model::ExpertRunner& inner_;
  TraceRecorder& recorder_;
  int depth_, count_;
  std::vector<std::vector<placement::GateGuess>> guesses_;
};

// Collects the routing in memory (for predictions made in the same run), chaining the hook
// that was installed before it. Given the transformer, each token carries its sequence's id
// (its cache's, a new one where a cache starts again at position 0); otherwise every token is
// of sequence 0.
class TraceCollector {
 public:
  TraceCollector(const loading::ModelConfig& config, model::RoutingHook previous,
                 const model::Transformer* rows_of = nullptr);
  model::RoutingHook hook();
  const placement::Trace& trace() const { return trace_; }
  // Attaches gate guesses to token `token` of the current forward call at the MoE layer the hook
  // saw last (as TraceRecorder::add_guesses).
  void add_guesses(int64_t token, std::vector<placement::GateGuess> guesses);

 private:
  placement::Trace trace_;
  model::RoutingHook previous_;
  const loading::ModelConfig* config_;
  const model::Transformer* rows_of_;
  model::SequenceIds sequences_;
  std::vector<int64_t> ids_;  // the current step's
  int first_sparse_ = -1;
  size_t batch_begin_ = 0;
};

class TraceReplayer {
 public:
  // Throws moe::Error(kInvalidArgument) when the trace's layers or experts differ from the model's.
  TraceReplayer(placement::Trace trace, const loading::ModelConfig& config);
  model::RoutingHook hook();
  int64_t replayed() const { return cursor_; }

 private:
  placement::Trace trace_;
  const loading::ModelConfig* config_;
  int first_sparse_ = -1;
  int top_k_ = 0;
  int64_t cursor_ = 0, batch_begin_ = 0;
};

}  // namespace moe::offload
