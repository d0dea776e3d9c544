#include "runtime/model/bam.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/combine.h"
#include "kernels/cpu/router.h"
#include "runtime/model/weight_matrix.h"

namespace moe::model {

BamAttentionLayer bam_attention_layer(const BamAttentionWeights& w, const loading::ModelConfig& c) {
  BamAttentionLayer l;
  l.router = cpu::weight_matrix(w.router.weight);
  for (const AttentionWeights& e : w.experts) {
    l.q.push_back(matrix_of(e.q));
    l.o.push_back(matrix_of(e.o));
    if (c.bam.expert_kv) {
      l.k.push_back(matrix_of(e.k));
      l.v.push_back(matrix_of(e.v));
    }
  }
  if (!c.bam.expert_kv) {
    l.shared_k = matrix_of(w.shared_k);
    l.shared_v = matrix_of(w.shared_v);
  }
  return l;
}

void bam_attention(const BamAttentionLayer& layer, const loading::ModelConfig& c, const cpu::RopeParams& rope_params,
                   int layer_index, const float* x, int64_t n, std::span<const int64_t> positions, KvCache& cache,
                   float* out, LinearBackend* backend) {
  const int64_t A = c.bam.attention_experts, nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim, h = c.hidden_size;
  const int64_t q_width = nh * hd, kv_width = nkv * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  const cpu::RopeTable rope = cpu::make_rope_table(rope_params, cache.length() + n);
  const int64_t start = cache.length();
  const int64_t row = cache.row_size();  // floats per token in this layer's cache

  // The router's soft weights, f32 softmax over the attention experts.
  std::vector<float> weights(static_cast<size_t>(n * A));
  cpu::matmul(x, n, layer.router, weights.data());
  cpu::softmax_rows(weights.data(), n, A);

  std::vector<float> q(static_cast<size_t>(n * q_width)), k(static_cast<size_t>(n * kv_width)),
      v(static_cast<size_t>(n * kv_width));
  std::vector<float> heads(static_cast<size_t>(n * q_width)), projected(static_cast<size_t>(n * h));
  const auto put_kv = [&](int64_t slot) {  // this expert's (or the shared) K/V into the cache
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(k.data() + t * kv_width, kv_width, cache.keys(layer_index) + (start + t) * row + slot * kv_width);
      std::copy_n(v.data() + t * kv_width, kv_width, cache.values(layer_index) + (start + t) * row + slot * kv_width);
    }
  };
  if (c.bam.expert_kv) {
    for (int64_t e = 0; e < A; ++e) {
      linear(backend, x, n, layer.k[size_t(e)], k.data());
      linear(backend, x, n, layer.v[size_t(e)], v.data());
      cpu::apply_rope(k.data(), n, nkv, hd, rope_params.rotary_dim, positions.data(), rope);
      put_kv(e);
    }
  } else {
    linear(backend, x, n, layer.shared_k, k.data());
    linear(backend, x, n, layer.shared_v, v.data());
    cpu::apply_rope(k.data(), n, nkv, hd, rope_params.rotary_dim, positions.data(), rope);
    put_kv(0);
  }
  std::fill_n(out, n * h, 0.0f);
  std::vector<float> all_q, all_heads;
  if (c.bam.expert_kv) {  // one call: expert e's query heads read expert e's KV heads
    all_q.resize(static_cast<size_t>(n * A * q_width));
    all_heads.resize(all_q.size());
    for (int64_t e = 0; e < A; ++e) {
      linear(backend, x, n, layer.q[size_t(e)], q.data());
      cpu::apply_rope(q.data(), n, nh, hd, rope_params.rotary_dim, positions.data(), rope);
      for (int64_t t = 0; t < n; ++t) std::copy_n(q.data() + t * q_width, q_width, all_q.data() + (t * A + e) * q_width);
    }
    cpu::attention(all_q.data(), cache.keys(layer_index), cache.values(layer_index), n, start, A * nh, A * nkv, hd, scale,
                   all_heads.data());
  }
  for (int64_t e = 0; e < A; ++e) {
    if (c.bam.expert_kv) {
      for (int64_t t = 0; t < n; ++t) std::copy_n(all_heads.data() + (t * A + e) * q_width, q_width, heads.data() + t * q_width);
    } else {
      linear(backend, x, n, layer.q[size_t(e)], q.data());
      cpu::apply_rope(q.data(), n, nh, hd, rope_params.rotary_dim, positions.data(), rope);
      cpu::attention(q.data(), cache.keys(layer_index), cache.values(layer_index), n, start, nh, nkv, hd, scale, heads.data());
    }
    linear(backend, heads.data(), n, layer.o[size_t(e)], projected.data());
    for (int64_t t = 0; t < n; ++t) cpu::axpy(out + t * h, projected.data() + t * h, weights[size_t(t * A + e)], h);
  }
}

}  // namespace moe::model
