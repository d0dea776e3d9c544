#pragma once
// Causal scaled-dot-product attention over a KV cache with grouped-query heads, f32, as the CPU's
// kernels/cpu/attention.h computes it. Launchers return the launch's CUDA error; pointers are
// device memory.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

// q [n_tokens, n_heads, head_dim] at positions first_position + i over the caches
// [>= first_position + n_tokens, n_kv_heads, head_dim]; out like q. One block per (token, head)
// with its scores in shared memory: prefill, and decode up to a few tens of thousands of keys.
// sliding_window > 0: query i sees only the last that many keys. head_mask [n_tokens, n_heads]
// (device, or null): the (token, head) pairs to compute; the others are written as zeros
// (DS-MoE's attention experts the router left out). block_table (device, or null) pages the
// caches as cpu::KvBlocks does: key j at row block_table[j / block_tokens] * block_tokens +
// j % block_tokens (the table covering the first_position + n_tokens keys); null: row j. The
// same arithmetic in the same order either way.
cudaError_t attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out, cudaStream_t stream,
                      int64_t sliding_window = 0, const uint8_t* head_mask = nullptr, const int32_t* block_table = nullptr,
                      int64_t block_tokens = 0);
// Shared memory attention() takes per block for `keys` keys: a score each and the reduction's
// scratch. Past what a block may opt into (cudaDevAttrMaxSharedMemoryPerBlockOptin) it cannot run.
uint64_t attention_shared_bytes(int64_t keys);

// The same, split over the keys for long contexts (flash-decoding): blocks of `split_keys` keys
// per (token, head) each keep their max, sum and unnormalised weighted values in `workspace`,
// and a second pass merges them. Enough parallelism for one decode token, no shared-memory
// limit on the context. workspace: attention_split_workspace(...) floats.
int64_t attention_split_workspace(int64_t n_tokens, int64_t first_position, int64_t n_heads, int64_t head_dim, int64_t split_keys);
cudaError_t attention_split(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
                            int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t split_keys,
                            float* workspace, cudaStream_t stream, int64_t sliding_window = 0,
                            const uint8_t* head_mask = nullptr, const int32_t* block_table = nullptr, int64_t block_tokens = 0);

}  // namespace moe::cuda
