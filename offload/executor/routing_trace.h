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

 private:
  void flush();
  std::unique_ptr<placement::TraceWriter> writer_;
  const loading::ModelConfig* config_;
  int first_sparse_ = -1;
  int64_t sequence_ = 0, written_ = 0;
  std::vector<placement::TokenRecord> pending_;  // the current forward call's tokens
};

// Collects the routing in memory (for predictions made in the same run), chaining the hook
// that was installed before it.
class TraceCollector {
 public:
  TraceCollector(const loading::ModelConfig& config, model::RoutingHook previous);
  model::RoutingHook hook();
  const placement::Trace& trace() const { return trace_; }

 private:
  placement::Trace trace_;
  model::RoutingHook previous_;
  const loading::ModelConfig* config_;
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
