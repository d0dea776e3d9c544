#pragma once
// A small model shape for the placement tests (hidden 1024, 8 heads over 2 KV heads, experts of
// 3 x 1024 x 2048 parameters): only the counts the cost model and planner read.
#include "placement/cost/model_shape.h"

namespace moe::placement::testing {

inline ModelShape tiny_shape(int layers, int experts, int top_k) {
  ModelShape s;
  s.name = "tiny";
  s.num_layers = s.num_sparse_layers = layers;
  s.sparse_layers.assign(size_t(layers), true);
  s.num_experts = experts;
  s.top_k = top_k;
  s.hidden = 1024;
  s.num_heads = 8;
  s.num_kv_heads = 2;
  s.head_dim = 128;
  s.vocab = 1000;
  s.expert_params = 3 * 1024 * 2048;
  s.attention_params = 1024 * 1024 * 3;
  s.dense_params = layers * s.attention_params + 2 * 1000 * 1024;
  return s;
}

}  // namespace moe::placement::testing
