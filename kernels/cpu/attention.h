#pragma once
// Causal scaled-dot-product attention over a KV cache, with grouped-query heads.
#include <cstdint>

namespace moe::cpu {

// q: [n_tokens, n_heads, head_dim] at positions first_position + i; caches: [>= first_position +
// n_tokens, n_kv_heads, head_dim]; out: [n_tokens, n_heads, head_dim]. Query i sees keys
// 0..first_position + i (the last `sliding_window` of them when > 0). Head h reads kv head
// h / (n_heads / n_kv_heads). Each (token, head) is computed the same way whatever the number of
// tokens per call, so prefill equals step-by-step decode bit for bit. `head_mask` [n_tokens,
// n_heads], when given, names the (token, head) pairs to compute; the others are written as zeros
// (DS-MoE's attention experts that the router left out).
void attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out,
               int64_t sliding_window = 0, const uint8_t* head_mask = nullptr);

}  // namespace moe::cpu
