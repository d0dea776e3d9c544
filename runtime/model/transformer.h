#pragma once
// The forward pass of a decoder-only MoE transformer on the CPU: Mixtral, Qwen2/3-MoE, OLMoE,
// DeepSeek-MoE, DeepSeek-V2/V3 (multi-head latent attention, mla.h) and gpt-oss (gpt_oss.h), as transformers computes them, in f32 over weights in their stored dtype.
//
// Bit-determinism: every kernel's result for a token is independent of the batch it is
// computed in and of the thread count, and experts are combined in expert-index order, so a
// token's logits are the same whichever expert runner, budget or schedule produced them.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rope.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/attention_backend.h"
#include "runtime/model/expert_runner.h"
#include "runtime/model/gated_mlp.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/linear_backend.h"
#include "runtime/model/routing.h"
#include "runtime/model/weights.h"

namespace moe::model {

// Sees (and may replace) each MoE layer's routing decision before the experts run: the
// profiler records it, trace replay overrides it.
using RoutingHook = std::function<void(int layer, std::span<const int64_t> positions, RoutingDecision& decision)>;
// Sees each MoE layer's expert input x [n, hidden] with its final routing just before the
// experts run: what a predictor needs to guess later layers' experts (the in-place read-ahead).
using ExpertInputHook = std::function<void(int layer, const float* x, int64_t n, const RoutingDecision& decision)>;

enum class LogitsWanted { kLast, kAll, kNone };

// One sequence's share of a batched step: its next tokens, at the positions following its
// cache's content, and the logits it wants back.
struct SequenceStep {
  std::span<const int32_t> tokens;
  KvCache* cache = nullptr;
  LogitsWanted logits = LogitsWanted::kLast;
};

// Whose a row of the running step is: its sequence's cache (an identity only) and its position
// there (0: the sequence begins with this row).
struct StepRow {
  const KvCache* sequence = nullptr;
  int64_t position = 0;
};

class Transformer {
 public:
  Transformer(loading::ModelConfig config, ModelWeights weights);
  ~Transformer();

  const loading::ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }

  // Replaces the resident expert runner (not owned; must outlive the transformer's use).
  void set_expert_runner(ExpertRunner* runner);
  // Where attention's projections, dense and shared MLPs and the LM head run (not owned); the
  // CPU kernels when null.
  void set_linear_backend(LinearBackend* backend) { linear_ = backend; }
  // Where attention over the KV cache runs (not owned); the CPU kernel when null. gpt-oss's
  // attention sinks run on the CPU kernel only (refused otherwise).
  void set_attention_backend(AttentionBackend* backend);
  void set_routing_hook(RoutingHook hook) { routing_hook_ = std::move(hook); }
  const RoutingHook& routing_hook() const { return routing_hook_; }  // to chain hooks
  void set_expert_input_hook(ExpertInputHook hook) { expert_input_hook_ = std::move(hook); }
  const ExpertInputHook& expert_input_hook() const { return expert_input_hook_; }  // to chain hooks
  // DS-MoE's routing modes at run time (routing.h); MoE++ keeps its own routing.
  void set_routing_mode(const RoutingMode& mode);
  const RoutingMode& routing_mode() const { return routing_mode_; }
  // The mode in force: the one set, or for `default` the model's own (DS-MoE's inference_method).
  const RoutingMode& effective_routing_mode() const { return effective_routing_; }

  KvCache make_cache(int64_t capacity) const;
  // The positions a sequence may hold: the model's context (max_position_embeddings), or fewer
  // learned position embeddings (DS-MoE) when it has them.
  int64_t max_positions() const;
  // A pool of KV blocks shaped for this model (kv_block_pool.h), to make caches in with
  // KvCache(pool, capacity).
  std::shared_ptr<KvBlockPool> make_kv_pool(int64_t block_tokens, int64_t num_blocks) const;

  // Runs `tokens` at the positions following the cache's content, appends them to the cache
  // and returns logits [1 or tokens.size(), vocab].
  std::vector<float> forward(std::span<const int32_t> tokens, KvCache& cache, LogitsWanted wanted = LogitsWanted::kLast);
  // One step over many sequences: attention runs per sequence over its own cache; norms,
  // projections, routing and every routed expert run once over all the step's tokens. Returns
  // the logits each sequence wants, in batch order ([0, 1 or its tokens, vocab] each). A
  // sequence's logits are the same bits in any batch as alone. Every cache must be distinct.
  std::vector<float> forward(std::span<const SequenceStep> batch);

  // The router logits of `layer` for the routed FFN experts, [m, num_experts], for normalised
  // hidden states x [m, hidden] (the next-layer predictor of the prefetcher calls this).
  void router_logits(int layer, const float* x, int64_t m, float* out) const;
  // The rows of the step now running (or last run), in row order: which sequence each belongs
  // to, so a predictor that learns a sequence's own history can tell sequences apart.
  std::span<const StepRow> step_rows() const { return step_rows_; }

 private:
  struct Layer;
  void attention(const Layer& layer, int index, const float* x, std::span<const int64_t> positions,
                 std::span<const TokenSpan> sequences, float* out);
  // out [n, hidden] = the decision's experts (through the ExpertRunner) weighted and summed per token.
  void run_routed_experts(int index, const float* x, const RoutingDecision& decision, float* out);
  void moe(const Layer& layer, int index, const float* x, int64_t n, std::span<const int64_t> positions, float* out,
           std::vector<float>& gate_residual);
  // The family's top-k (and DS-MoE's modes) over router logits [n, num_experts].
  RoutingDecision family_route(const float* logits, int64_t n) const;
  // out += the layer's shared experts of x (Qwen2-MoE's gated), when it has them.
  void add_shared_experts(const Layer& layer, const float* x, int64_t n, float* out);
  bool grouped_routing() const {
    return config_.family == loading::ModelFamily::kDeepseekV2 || config_.family == loading::ModelFamily::kDeepseekV3 ||
           config_.family == loading::ModelFamily::kGlm4Moe;
  }
  void moe_plus_plus(const Layer& layer, int index, const float* x, int64_t n, std::span<const int64_t> positions,
                     float* out, std::vector<float>& gate_residual);

  loading::ModelConfig config_;
  ModelWeights weights_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_, final_norm_bias_;
  cpu::WeightMatrix lm_head_;
  cpu::RopeParams rope_params_;
  std::unique_ptr<ExpertRunner> resident_experts_;
  ExpertRunner* experts_ = nullptr;
  LinearBackend* linear_ = nullptr;
  AttentionBackend* attention_backend_ = nullptr;
  RoutingHook routing_hook_;
  ExpertInputHook expert_input_hook_;
  std::vector<StepRow> step_rows_;
  RoutingMode routing_mode_;
  RoutingMode effective_routing_;  // routing_mode_ with DS-MoE's `default` resolved once
};

}  // namespace moe::model
