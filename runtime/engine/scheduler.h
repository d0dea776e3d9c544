#pragma once
// Continuous batching over one model: sequences join and leave at step boundaries; each step
// runs the decode token of every running sequence and prefill chunks of the others, within a
// per-step token budget, as one batched forward (Transformer::forward over SequenceSteps). KV
// memory is a shared pool of blocks (kv_block_pool.h): a sequence is admitted, first come first
// served, when its next chunk's blocks are free and the batch has room; a running sequence that
// needs a block the pool lacks takes it from the youngest running one, which is preempted (its
// blocks freed) and later recomputed from its prompt and the tokens it had produced. Since a
// sequence's logits are the same bits in any batch and prefill equals decode, preemption and
// company never change a sequence's tokens.
//
// Not thread-safe: one thread submits, cancels and steps (the server serialises onto it).
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/model/generator.h"
#include "runtime/model/kv_block_pool.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/sampler.h"
#include "runtime/model/transformer.h"

namespace moe::engine {

struct SchedulerOptions {
  int max_batch = 16;             // sequences in one step
  int64_t max_step_tokens = 512;  // tokens in one step: decode tokens first, prefill chunks in what is left
};

using SequenceId = int64_t;

// What one step did to a sequence: a token it produced, and whether it ended.
struct SequenceEvent {
  SequenceId id = 0;
  std::optional<int32_t> token;
  bool finished = false;
  std::string finish_reason;  // "length", "stop_token" or "cancelled" once finished
};

struct SequenceStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t preemptions = 0;
  int64_t recomputed_tokens = 0;  // tokens prefilled again after preemptions
  double queue_seconds = 0;       // from submission to the first step that ran it
  double first_token_seconds = 0; // from submission to the first token
  double total_seconds = 0;       // from submission to the end
  // Tokens after the first per second, from the first token to the last.
  double decode_tokens_per_second() const {
    const double span = total_seconds - first_token_seconds;
    return generated_tokens > 1 && span > 0 ? double(generated_tokens - 1) / span : 0;
  }
};

struct SchedulerStats {
  int64_t steps = 0;
  int64_t step_tokens = 0;       // tokens run, prefill and decode, summed over steps
  int64_t generated_tokens = 0;
  int64_t preemptions = 0;
  int max_running = 0;           // most sequences in one step
  int64_t peak_kv_tokens = 0;    // most tokens the KV cache held at once (a step's new ones included)
  int64_t peak_kv_blocks = 0;    // blocks in use at that moment
};

// Under mpirun every rank runs a scheduler over the same model and pool, and rank 0's decides
// (scheduler_ranks.h): what was submitted and cancelled there reaches the others before each
// step, and each step's sampled tokens are rank 0's on every rank, so the batches, the caches and
// the experts' exchanges match step for step.
class StepAgreement {
 public:
  virtual ~StepAgreement() = default;
  virtual void submitted(SequenceId id, const std::vector<int32_t>& prompt, const model::GenerationOptions& options) = 0;
  virtual void cancelled(SequenceId id) = 0;
  virtual void stepping() = 0;                           // a step begins
  virtual void agree(std::vector<int32_t>& sampled) = 0;  // this step's tokens, in plan order: rank 0's
};

class Scheduler {
 public:
  // `pool` must be shaped for `model` (Transformer::make_kv_pool).
  Scheduler(model::Transformer& model, std::shared_ptr<model::KvBlockPool> pool, SchedulerOptions options = {});
  ~Scheduler();

  // Queues a sequence. Throws moe::Error when it can never run: an empty prompt, a token outside
  // the vocabulary, beyond the model's positions, or more KV than the whole pool holds
  // (prompt + max_new_tokens tokens, kOutOfMemory).
  SequenceId submit(std::vector<int32_t> prompt, const model::GenerationOptions& options);
  // Ends a sequence at the next step boundary (its event says "cancelled"); false when unknown or
  // already finished.
  bool cancel(SequenceId id);
  // Runs one batched step and returns what it did to each sequence (cancellations included).
  std::vector<SequenceEvent> step();
  bool idle() const { return running_.empty() && waiting_.empty() && cancelled_.empty(); }
  int running() const { return int(running_.size()); }
  int waiting() const { return int(waiting_.size()); }

  // A sequence's tokens so far and its stats (finished ones are kept until forget()).
  const std::vector<int32_t>& tokens(SequenceId id) const;
  SequenceStats sequence_stats(SequenceId id) const;
  void forget(SequenceId id);
  const SchedulerStats& stats() const { return stats_; }
  // KV bytes per token held at the fullest moment (the blocks' slack included).
  double kv_bytes_per_token() const;
  const model::KvBlockPool& pool() const { return *pool_; }
  // Several processes: every submission, cancellation and step goes through `agreement` (not
  // owned; null: one process).
  void set_agreement(StepAgreement* agreement) { agreement_ = agreement; }

 private:
  struct Sequence;
  using Clock = std::chrono::steady_clock;
  Sequence& find(SequenceId id) const;
  void preempt(Sequence& s);
  void finish(Sequence& s, std::string reason, std::vector<SequenceEvent>& events);
  void note_kv_use(int64_t planned_tokens);

  model::Transformer& model_;
  std::shared_ptr<model::KvBlockPool> pool_;
  SchedulerOptions options_;
  SequenceId next_id_ = 1;
  std::vector<std::unique_ptr<Sequence>> sequences_;  // every sequence not forgotten
  std::vector<Sequence*> running_;                    // in arrival order
  std::deque<Sequence*> waiting_;                     // in arrival order
  std::vector<Sequence*> cancelled_;                  // to end at the next step
  SchedulerStats stats_;
  StepAgreement* agreement_ = nullptr;
};

}  // namespace moe::engine
