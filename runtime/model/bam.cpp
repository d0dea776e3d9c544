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
                   int layer_index, const float* x, std::span<const int64_t> positions,
                   std::span<const TokenSpan> sequences, float* out, LinearBackend* backend,
                   AttentionBackend* attention_backend) {
  const int64_t n = int64_t(positions.size());
  const int64_t A = c.bam.attention_experts, nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim, h = c.hidden_size;
  const int64_t q_width = nh * hd, kv_width = nkv * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  const cpu::RopeTable rope = cpu::make_rope_table(rope_params, *std::max_element(positions.begin(), positions.end()) + 1);

  // The router's soft weights, f32 softmax over the attention experts.
  std::vector<float> weights(static_cast<size_t>(n * A));
  cpu::matmul(x, n, layer.router, weights.data());
  cpu::softmax_rows(weights.data(), n, A);

  std::vector<float> q(static_cast<size_t>(n * q_width)), k(static_cast<size_t>(n * kv_width)),
      v(static_cast<size_t>(n * kv_width));
  std::vector<float> heads(static_cast<size_t>(n * q_width)), projected(static_cast<size_t>(n * h));
  const auto put_kv = [&](int64_t slot) {  // this expert's (or the shared) K/V into each cache
    for (const TokenSpan& s : sequences)
      for (int64_t t = 0; t < s.count; ++t) {
        const int64_t position = s.cache->length() + t, token = s.first + t;
        std::copy_n(k.data() + token * kv_width, kv_width, s.cache->key_row(layer_index, position) + slot * kv_width);
        std::copy_n(v.data() + token * kv_width, kv_width, s.cache->value_row(layer_index, position) + slot * kv_width);
      }
  };
  // Attention of the sequences' queries [n, heads, hd], each over its own cache.
  const auto attend = [&](const float* queries, int64_t heads_per_token, int64_t kv_heads, float* result) {
    const int64_t width = heads_per_token * hd;
    std::vector<cpu::AttentionSequence> all;
    for (const TokenSpan& s : sequences) {
      if (!attention_backend) {
        all.push_back({queries + s.first * width, s.cache->blocks(layer_index), s.count, s.cache->length(), result + s.first * width});
        continue;
      }
      AttentionStep step;
      step.layer = layer_index;
      step.q = queries + s.first * width;
      step.n = s.count;
      step.start = s.cache->length();
      step.n_heads = heads_per_token;
      step.n_kv_heads = kv_heads;
      step.head_dim = hd;
      step.scale = scale;
      attention_backend->attend(*s.cache, step, result + s.first * width);
    }
    if (!all.empty()) cpu::attention(all, heads_per_token, kv_heads, hd, scale);
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
    attend(all_q.data(), A * nh, A * nkv, all_heads.data());
  }
  for (int64_t e = 0; e < A; ++e) {
    if (c.bam.expert_kv) {
      for (int64_t t = 0; t < n; ++t) std::copy_n(all_heads.data() + (t * A + e) * q_width, q_width, heads.data() + t * q_width);
    } else {
      linear(backend, x, n, layer.q[size_t(e)], q.data());
      cpu::apply_rope(q.data(), n, nh, hd, rope_params.rotary_dim, positions.data(), rope);
      attend(q.data(), nh, nkv, heads.data());
    }
    linear(backend, heads.data(), n, layer.o[size_t(e)], projected.data());
    for (int64_t t = 0; t < n; ++t) cpu::axpy(out + t * h, projected.data() + t * h, weights[size_t(t * A + e)], h);
  }
}

}  // namespace moe::model
