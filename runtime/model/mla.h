#pragma once
// DeepSeek-V2/V3 multi-head latent attention (loading::MlaConfig) on the CPU, in the absorbed
// form. transformers expands every cached latent c into each head's key k_h = [W_UK_h c, k_pe]
// and value v_h = W_UV_h c; here the key side is folded into the query instead,
//   q_h . k_h = (W_UK_h^T q_nope_h) . c + q_pe_h . k_pe,
//   sum_j p_j v_h(j) = W_UV_h (sum_j p_j c_j),
// so attention is one multi-query attention over the cache's rows [c, k_pe] (kv_lora_rank +
// qk_rope_head_dim floats per token and layer, keys and values at once) and K/V are never
// materialised. The same values as transformers' up to f32 rounding; every step is per token,
// so prefill equals step-by-step decode bit for bit.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rope.h"
#include "runtime/core/tensor.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/attention_backend.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/linear_backend.h"
#include "runtime/model/weights.h"

namespace moe::model {

struct MlaLayer {
  cpu::WeightMatrix q, q_a, q_b, kv_a, o;  // q when q_lora_rank is null, else q_a and q_b
  std::vector<float> q_a_bias, kv_a_bias, o_bias, q_a_norm, kv_a_norm;
  std::vector<cpu::WeightMatrix> uk_t;  // per head: W_UK_h^T [kv_lora_rank, qk_nope_head_dim], in uk_t_storage
  std::vector<cpu::WeightMatrix> uv;    // per head: W_UV_h [v_head_dim, kv_lora_rank], rows of kv_b_proj
  Tensor uk_t_storage;                  // kv_b_proj's key rows transposed (its dtype; f32 for int8/int4)
  Tensor uk_t_block_scales;             // FP8 kv_b_proj: its block scales transposed, for uk_t
};

MlaLayer mla_layer(const MlaWeights& w, const loading::ModelConfig& config);

// x [n, hidden] (normalised; the tokens of `sequences` side by side, at `positions`) -> out
// [n, hidden]; writes this layer's latent rows into each sequence's cache and attends per
// sequence. q_a/q_b (or q), kv_a and o run on `linear` when given; the attention over the cache
// on `attention` when given, as multi-query attention of one KV head of the cache's row (a
// backend that mirrors keys and values holds the latent twice), else on the CPU kernel.
void mla_attention(const MlaLayer& layer, const loading::ModelConfig& config, const cpu::RopeParams& rope, int layer_index,
                   const float* x, std::span<const int64_t> positions, std::span<const TokenSpan> sequences, float* out,
                   LinearBackend* linear = nullptr, AttentionBackend* attention = nullptr);

// Rotates pairs of `dim` values at x (stride between tokens: `stride` floats) for each token at
// `positions`: pairs (2i, 2i+1) when interleaved (DeepSeek's layout), else (i, i + dim/2).
void mla_rope(float* x, int64_t n_tokens, int64_t stride, int64_t dim, bool interleaved, const int64_t* positions,
              const cpu::RopeTable& table);

}  // namespace moe::model
