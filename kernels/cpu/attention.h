#pragma once
// Causal scaled-dot-product attention over a KV cache, with grouped-query heads.
#include <cstdint>
#include <span>

namespace moe::cpu {

// Where a sequence's keys and values lie: rows of n_kv_heads * head_dim floats, the sequence's
// token j at physical row table[j / block_tokens] * block_tokens + j % block_tokens of `keys`
// and `values` (a paged cache), or at row j when `table` is null (one contiguous cache).
struct KvBlocks {
  const float* keys = nullptr;
  const float* values = nullptr;
  const int32_t* table = nullptr;
  int64_t block_tokens = 0;
};

// q: [n_tokens, n_heads, head_dim] at positions first_position + i; out: [n_tokens, n_heads,
// head_dim]. Query i sees keys 0..first_position + i (the last `sliding_window` of them when > 0).
// Head h reads kv head h / (n_heads / n_kv_heads). Each (token, head) is computed the same way
// whatever the number of tokens per call and however the rows are paged, so prefill equals
// step-by-step decode, and a paged cache a contiguous one, bit for bit. `head_mask` [n_tokens,
// n_heads], when given, names the (token, head) pairs to compute; the others are written as zeros
// (DS-MoE's attention experts that the router left out). `sinks` [n_heads], when given, are
// gpt-oss's attention sinks: head h's softmax has one more logit, sinks[h], in its denominator
// (and its max) that weighs no value: p_j = exp(s_j - M) / (sum_k exp(s_k - M) + exp(sinks[h] - M)).
void attention(const float* q, const KvBlocks& kv, int64_t n_tokens, int64_t first_position, int64_t n_heads,
               int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t sliding_window = 0,
               const uint8_t* head_mask = nullptr, const float* sinks = nullptr);

// One sequence of a batched step: its queries, cache, positions and output, as above.
struct AttentionSequence {
  const float* q = nullptr;
  KvBlocks kv;
  int64_t n_tokens = 0, first_position = 0;
  float* out = nullptr;
  const uint8_t* head_mask = nullptr;
};

// Attention of many sequences at once, each over its own cache: one parallel loop over every
// (sequence, token, kv head), each computed as the single-sequence call computes it.
void attention(std::span<const AttentionSequence> sequences, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
               int64_t sliding_window = 0, const float* sinks = nullptr);

// The same over contiguous caches [>= first_position + n_tokens, n_kv_heads, head_dim].
inline void attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out,
                      int64_t sliding_window = 0, const uint8_t* head_mask = nullptr, const float* sinks = nullptr) {
  attention(q, KvBlocks{k_cache, v_cache, nullptr, 0}, n_tokens, first_position, n_heads, n_kv_heads, head_dim, scale, out,
            sliding_window, head_mask, sinks);
}

}  // namespace moe::cpu
