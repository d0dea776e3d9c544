#pragma once
// BAM's mixture of attention experts (arXiv 2408.08274) under soft routing: every attention
// expert runs on the block's normalised input and the outputs are summed, weighted by a softmax
// router. Expert-KV: each expert has its own k/v projections, and the layer's cache holds every
// expert's KV heads side by side, so one attention call over all experts' heads serves them all;
// Shared-KV: one k/v projection and cache, one attention call per expert.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rope.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/attention_backend.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/linear_backend.h"
#include "runtime/model/weights.h"

namespace moe::model {

struct BamAttentionLayer {
  cpu::WeightMatrix router;
  std::vector<cpu::WeightMatrix> q, k, v, o;  // per expert; k, v empty under Shared-KV
  cpu::WeightMatrix shared_k, shared_v;
};

BamAttentionLayer bam_attention_layer(const BamAttentionWeights& w, const loading::ModelConfig& config);

// x [n, hidden] (normalised; the tokens of `sequences` side by side, at `positions`) -> out
// [n, hidden]; writes this layer's K/V into each sequence's cache and attends per sequence.
// The experts' q, k, v and o products run on `linear` when given (the router stays on the CPU),
// the attention over the caches on `attention` when given (under Expert-KV one step of every
// expert's heads, each expert's query heads over its own KV heads).
void bam_attention(const BamAttentionLayer& layer, const loading::ModelConfig& config, const cpu::RopeParams& rope,
                   int layer_index, const float* x, std::span<const int64_t> positions,
                   std::span<const TokenSpan> sequences, float* out, LinearBackend* linear = nullptr,
                   AttentionBackend* attention = nullptr);

}  // namespace moe::model
