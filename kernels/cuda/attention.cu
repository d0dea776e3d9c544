#include "kernels/cuda/attention.h"

#include <cfloat>
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

// The first key query at `position` sees: 0, or the start of its sliding window.
__device__ inline int64_t first_key(int64_t position, int64_t sliding_window) {
  return sliding_window > 0 ? max(int64_t(0), position - sliding_window + 1) : 0;
}

// Where key j lies: its physical row (table[j / block_tokens] * block_tokens + j % block_tokens,
// or j without a table) and how many keys from j on follow it in consecutive rows (to the end of
// its block; unbounded without a table). 32-bit division: the launchers refuse a table with keys
// or block_tokens past 2^31 (valid_blocks).
struct KeyRow {
  int64_t row, run;
};
__device__ inline KeyRow key_row(const int32_t* table, int64_t block_tokens, int64_t j) {
  if (!table) return {j, INT64_MAX};
  const uint32_t bt = uint32_t(block_tokens), jj = uint32_t(j), offset = jj % bt;
  return {int64_t(table[jj / bt]) * block_tokens + offset, int64_t(bt - offset)};
}

// One query's softmax attention over keys [begin, end) by the whole block, scores in shared
// memory: writes the unnormalised weighted values o[0..head_dim) (each thread its own entries)
// and returns {max score, sum of exp(score - max)}, for the caller to normalise or merge. Keys
// are addressed through `table` (key_row); the arithmetic and its order do not depend on it.
__device__ float2 attend_keys(const float* qv, const float* k, const float* v, const int32_t* table, int64_t block_tokens,
                              int64_t kv_row, int64_t head_dim, float scale, int64_t begin, int64_t end, float* scores,
                              float* shared, float* o) {
  float local_max = -FLT_MAX;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const float* kj = k + key_row(table, block_tokens, j).row * kv_row;
    float dot = 0.0f;
    for (int64_t d = 0; d < head_dim; ++d) dot = fmaf(qv[d], kj[d], dot);
    scores[j - begin] = dot * scale;
    local_max = fmaxf(local_max, dot * scale);
  }
  const float max = block_max(local_max, shared);
  float local_sum = 0.0f;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    scores[j - begin] = expf(scores[j - begin] - max);
    local_sum += scores[j - begin];
  }
  const float sum = block_sum(local_sum, shared);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = begin; j < end;) {  // a run of consecutive rows at a time: one lookup per block
      const KeyRow at = key_row(table, block_tokens, j);
      const int64_t run = min(at.run, end - j);
      const float* vj = v + at.row * kv_row + d;
      for (int64_t r = 0; r < run; ++r) acc = fmaf(scores[j - begin + r], vj[r * kv_row], acc);
      j += run;
    }
    o[d] = acc;
  }
  return make_float2(max, sum);
}

// One block per (token, head) over all its keys. A head the mask leaves out is written as zeros
// (the whole block takes that branch).
__global__ void attention_kernel(const float* q, const float* k_cache, const float* v_cache, int64_t first_position,
                                 int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out,
                                 int64_t sliding_window, const uint8_t* head_mask, const int32_t* block_table,
                                 int64_t block_tokens) {
  extern __shared__ float scores[];
  __shared__ float shared[32];
  const int64_t t = blockIdx.x / n_heads, h = blockIdx.x % n_heads, kv = h / (n_heads / n_kv_heads);
  float* o = out + (t * n_heads + h) * head_dim;
  if (head_mask && !head_mask[t * n_heads + h]) {
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) o[d] = 0.0f;
    return;
  }
  const int64_t keys = first_position + t + 1, kv_row = n_kv_heads * head_dim;
  const float2 stats = attend_keys(q + (t * n_heads + h) * head_dim, k_cache + kv * head_dim, v_cache + kv * head_dim, block_table,
                                   block_tokens, kv_row, head_dim, scale, first_key(keys - 1, sliding_window), keys, scores,
                                   shared, o);
  const float inv = 1.0f / stats.y;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) o[d] *= inv;  // the entries this thread wrote
}

// Split pass: block (token-head, split) over keys [split * S, min((split + 1) * S, keys)).
// workspace[(th * splits + split)] = {max, sum, o[0..head_dim)} with o unnormalised.
__global__ void attention_split_kernel(const float* q, const float* k_cache, const float* v_cache, int64_t first_position,
                                       int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, int64_t split_keys,
                                       int64_t splits, float* workspace, int64_t sliding_window, const uint8_t* head_mask,
                                       const int32_t* block_table, int64_t block_tokens) {
  extern __shared__ float scores[];  // [split_keys]
  __shared__ float shared[32];
  const int64_t th = blockIdx.x, split = blockIdx.y;
  const int64_t t = th / n_heads, h = th % n_heads, kv = h / (n_heads / n_kv_heads);
  const int64_t keys = first_position + t + 1, kv_row = n_kv_heads * head_dim;
  const int64_t begin = max(split * split_keys, first_key(keys - 1, sliding_window));
  const int64_t end = min(keys, split * split_keys + split_keys);
  float* w = workspace + (th * splits + split) * (head_dim + 2);
  if (begin >= end || (head_mask && !head_mask[th])) {  // outside this token's keys, or a masked head
    if (threadIdx.x == 0) w[0] = -FLT_MAX, w[1] = 0.0f;
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) w[2 + d] = 0.0f;
    return;
  }
  const float2 stats = attend_keys(q + (t * n_heads + h) * head_dim, k_cache + kv * head_dim, v_cache + kv * head_dim, block_table,
                                   block_tokens, kv_row, head_dim, scale, begin, end, scores, shared, w + 2);
  if (threadIdx.x == 0) w[0] = stats.x, w[1] = stats.y;
}

// Merge pass: one block per (token, head), rescaling each split to the common max.
__global__ void attention_merge_kernel(const float* workspace, int64_t head_dim, int64_t splits, float* out,
                                       const uint8_t* head_mask) {
  const int64_t th = blockIdx.x;
  if (head_mask && !head_mask[th]) {
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) out[th * head_dim + d] = 0.0f;
    return;
  }
  const float* w = workspace + th * splits * (head_dim + 2);
  float max = -FLT_MAX;
  for (int64_t s = 0; s < splits; ++s) max = fmaxf(max, w[s * (head_dim + 2)]);
  float sum = 0.0f;
  for (int64_t s = 0; s < splits; ++s) sum += w[s * (head_dim + 2) + 1] * expf(w[s * (head_dim + 2)] - max);
  const float inv = 1.0f / sum;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t s = 0; s < splits; ++s) acc = fmaf(w[s * (head_dim + 2) + 2 + d], expf(w[s * (head_dim + 2)] - max), acc);
    out[th * head_dim + d] = acc * inv;
  }
}

int64_t splits_for(int64_t n_tokens, int64_t first_position, int64_t split_keys) {
  return (first_position + n_tokens + split_keys - 1) / split_keys;
}

// A table needs a block size, and key_row's 32-bit arithmetic the keys and the block size.
bool valid_blocks(const int32_t* block_table, int64_t block_tokens, int64_t keys) {
  return !block_table || (block_tokens > 0 && block_tokens <= INT32_MAX && keys <= INT32_MAX);
}

// The scores of `keys` keys, with room past the last: the weighted sum's compiled loop reads a
// few scores beyond its run (compute-sanitizer's memcheck saw a 12-byte read at the last score on
// an H200) and uses only those inside it.
uint64_t scores_bytes(int64_t keys) { return (uint64_t(keys) + 7) / 4 * 4 * sizeof(float); }

}  // namespace

uint64_t attention_shared_bytes(int64_t keys) { return scores_bytes(keys) + 32 * sizeof(float); }

cudaError_t attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out, cudaStream_t stream,
                      int64_t sliding_window, const uint8_t* head_mask, const int32_t* block_table, int64_t block_tokens) {
  if (n_tokens <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || !valid_blocks(block_table, block_tokens, first_position + n_tokens))
    return cudaErrorInvalidValue;
  const size_t shared = scores_bytes(first_position + n_tokens);  // dynamic: the scores
  // Past 48 KiB of static (the reduction's) plus dynamic shared memory a kernel must opt in.
  if (attention_shared_bytes(first_position + n_tokens) > 48 * 1024) {  // long contexts: raise the dynamic limit
    const cudaError_t e = cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared));
    if (e != cudaSuccess) {
      cudaGetLastError();  // not left behind for an unrelated launch to report
      return e;
    }
  }
  attention_kernel<<<unsigned(n_tokens * n_heads), kThreads, shared, stream>>>(q, k_cache, v_cache, first_position, n_heads,
                                                                             n_kv_heads, head_dim, scale, out, sliding_window,
                                                                             head_mask, block_table, block_tokens);
  return cudaGetLastError();
}

int64_t attention_split_workspace(int64_t n_tokens, int64_t first_position, int64_t n_heads, int64_t head_dim, int64_t split_keys) {
  if (n_tokens <= 0 || split_keys <= 0) return 0;
  return n_tokens * n_heads * splits_for(n_tokens, first_position, split_keys) * (head_dim + 2);
}

cudaError_t attention_split(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
                            int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t split_keys,
                            float* workspace, cudaStream_t stream, int64_t sliding_window, const uint8_t* head_mask,
                            const int32_t* block_table, int64_t block_tokens) {
  if (n_tokens <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || split_keys <= 0 || split_keys > 8192 || workspace == nullptr ||
      !valid_blocks(block_table, block_tokens, first_position + n_tokens))
    return cudaErrorInvalidValue;
  const int64_t splits = splits_for(n_tokens, first_position, split_keys);
  if (splits > 65535) return cudaErrorInvalidValue;
  const size_t shared = scores_bytes(split_keys);  // about 32 KiB at most: no opt-in needed
  const dim3 grid(unsigned(n_tokens * n_heads), unsigned(splits));
  attention_split_kernel<<<grid, kThreads, shared, stream>>>(q, k_cache, v_cache, first_position, n_heads, n_kv_heads, head_dim,
                                                             scale, split_keys, splits, workspace, sliding_window, head_mask,
                                                             block_table, block_tokens);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  attention_merge_kernel<<<unsigned(n_tokens * n_heads), kThreads, 0, stream>>>(workspace, head_dim, splits, out, head_mask);
  return cudaGetLastError();
}

}  // namespace moe::cuda
