#pragma once
// Where causal attention over the KV cache runs. The transformer computes q, k and v, writes k
// and v into its (host) KvCache, then hands the step to the backend when one is set: a GPU
// backend keeps a device copy of the cache, appends the new rows and runs the CUDA kernels,
// filling any rows it lacks from the host cache (a backend set mid-sequence, another cache).
#include <cstdint>

#include "runtime/model/kv_cache.h"

namespace moe::model {

struct AttentionStep {
  int layer = 0;
  const float* q = nullptr;  // [n, n_heads, head_dim]
  int64_t n = 0, start = 0;  // new tokens, at positions start..start + n - 1 (already in the cache)
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;
  int64_t sliding_window = 0;         // > 0: each query sees only its last that many keys
  const uint8_t* head_mask = nullptr;  // [n, n_heads] host memory, or null: (token, head) pairs to
                                       // compute; the others come out as zeros (DS-MoE)
};

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  // out [n, n_heads, head_dim]: attention of step.q over rows 0..start + n - 1 of `cache`.
  virtual void attend(KvCache& cache, const AttentionStep& step, float* out) = 0;
};

}  // namespace moe::model
