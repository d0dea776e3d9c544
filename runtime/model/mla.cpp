#include "runtime/model/mla.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/norm.h"
#include "runtime/core/error.h"
#include "runtime/model/weight_matrix.h"

namespace moe::model {
namespace {

// transformers' DeepseekV2RMSNorm for q_a_layernorm and kv_a_layernorm keeps its default epsilon
// (rms_norm_eps is only the blocks' norms).
constexpr float kLatentNormEps = 1e-6f;

std::vector<float> floats_of(const Tensor& t) {
  if (!t.defined()) return {};
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

const float* or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

cpu::WeightMatrix matrix_or_none(const Linear& l) { return l.weight.defined() ? matrix_of(l) : cpu::WeightMatrix{}; }

}  // namespace

MlaLayer mla_layer(const MlaWeights& w, const loading::ModelConfig& c) {
  const loading::MlaConfig& m = c.mla;
  MlaLayer layer;
  layer.q = matrix_or_none(w.q);
  layer.q_a = matrix_or_none(w.q_a);
  layer.q_b = matrix_or_none(w.q_b);
  layer.kv_a = matrix_of(w.kv_a);
  layer.o = matrix_of(w.o);
  layer.q_a_bias = floats_of(w.q_a.bias);
  layer.kv_a_bias = floats_of(w.kv_a.bias);
  layer.o_bias = floats_of(w.o.bias);
  layer.q_a_norm = floats_of(w.q_a_norm);
  layer.kv_a_norm = floats_of(w.kv_a_norm);

  const int64_t heads = c.num_heads, nope = m.qk_nope_head_dim, dv = m.v_head_dim, r = m.kv_lora_rank;
  const int64_t per_head = nope + dv;
  const cpu::WeightMatrix kv_b = matrix_of(w.kv_b);
  // W_UK_h^T: element (j, i) of head h is kv_b's row h * per_head + i, column j. Stored elements
  // move as they are; an int8/int4 kv_b is widened to f32 first.
  const bool widen = w.kv_b.quantized();
  const DType dtype = widen ? DType::kF32 : kv_b.dtype;
  const size_t element = dtype_bytes(dtype, 1);
  layer.uk_t_storage = Tensor::empty(dtype, {std::max<int64_t>(heads * r * nope, 1)});
  auto* dst = layer.uk_t_storage.data<std::byte>();
  std::vector<float> row(static_cast<size_t>(r));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < nope; ++i) {
      const int64_t src_row = h * per_head + i;
      const std::byte* src = nullptr;
      if (widen) {
        cpu::row_to_f32(kv_b, src_row, row.data());
        src = reinterpret_cast<const std::byte*>(row.data());
      } else {
        src = static_cast<const std::byte*>(kv_b.data) + size_t(src_row * kv_b.stride()) * element;
      }
      for (int64_t j = 0; j < r; ++j)
        std::memcpy(dst + size_t((h * r + j) * nope + i) * element, src + size_t(j) * element, element);
    }
  // An FP8 kv_b stays FP8: W_UK_h^T's element (j, i) takes the scale of kv_b's block (row h *
  // per_head + i, column j), so each head's matrix sits in the transposed grid at column h * per_head.
  if (w.kv_b.fp8()) {
    const Tensor& s = w.kv_b.block_scales;
    layer.uk_t_block_scales = Tensor::empty(DType::kF32, {s.dim(1), s.dim(0)});
    for (int64_t a = 0; a < s.dim(0); ++a)
      for (int64_t b = 0; b < s.dim(1); ++b) layer.uk_t_block_scales.data<float>()[b * s.dim(0) + a] = s.data<float>()[a * s.dim(1) + b];
  }
  for (int64_t h = 0; h < heads; ++h) {
    cpu::WeightMatrix uk;
    uk.data = dst + size_t(h * r * nope) * element;
    uk.dtype = dtype;
    uk.rows = r;
    uk.cols = nope;
    if (w.kv_b.fp8()) {
      uk.block_scales = layer.uk_t_block_scales.data<float>();
      uk.block_rows = w.kv_b.block_cols;
      uk.block_cols = w.kv_b.block_rows;
      uk.block_stride = layer.uk_t_block_scales.dim(1);
      uk.block_col0 = h * per_head;
    }
    layer.uk_t.push_back(uk);
    layer.uv.push_back(matrix_rows(w.kv_b, h * per_head + nope, (h + 1) * per_head));
  }
  return layer;
}

void mla_rope(float* x, int64_t n_tokens, int64_t stride, int64_t dim, bool interleaved, const int64_t* positions,
              const cpu::RopeTable& table) {
  const int64_t half = dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* v = x + t * stride;
    for (int64_t i = 0; i < half; ++i) {
      // As cpu::apply_rope (and torch): the angle in f32, cos and sin scaled by the attention factor.
      const float angle = float(positions[t]) * table.inv_freq[size_t(i)];
      const float cos = float(std::cos(double(angle))) * table.attention_scaling;
      const float sin = float(std::sin(double(angle))) * table.attention_scaling;
      float& a = interleaved ? v[2 * i] : v[i];
      float& b = interleaved ? v[2 * i + 1] : v[i + half];
      const float a0 = a, b0 = b;
      a = a0 * cos - b0 * sin;
      b = b0 * cos + a0 * sin;
    }
  }
}

void mla_attention(const MlaLayer& layer, const loading::ModelConfig& c, const cpu::RopeParams& rope_params, int index,
                   const float* x, std::span<const int64_t> positions, std::span<const TokenSpan> sequences, float* out,
                   LinearBackend* backend, AttentionBackend* attention_backend) {
  const loading::MlaConfig& m = c.mla;
  const int64_t n = int64_t(positions.size()), heads = c.num_heads;
  const int64_t nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, r = m.kv_lora_rank, dv = m.v_head_dim;
  const int64_t qk = nope + rope, row = r + rope;  // row: the cache's [latent, k_pe]
  MOE_CHECK(c.head_dim == row && c.num_kv_heads == 1, ErrorCode::kInternal, "the MLA cache row is not {} floats", row);

  // q [n, heads, qk]: q_proj, or q_b(norm(q_a(x))).
  std::vector<float> q(size_t(n * heads * qk));
  if (layer.q_b.data != nullptr) {
    std::vector<float> qa(size_t(n * m.q_lora_rank));
    linear(backend, x, n, layer.q_a, qa.data(), or_null(layer.q_a_bias));
    cpu::rms_norm(qa.data(), qa.data(), n, m.q_lora_rank, layer.q_a_norm.data(), kLatentNormEps);
    linear(backend, qa.data(), n, layer.q_b, q.data());
  } else {
    linear(backend, x, n, layer.q, q.data());
  }
  // [latent, k_pe] [n, row]: the latent normalised, k_pe rotated, as the cache keeps them.
  std::vector<float> kv(size_t(n * row));
  linear(backend, x, n, layer.kv_a, kv.data(), or_null(layer.kv_a_bias));
  for (int64_t t = 0; t < n; ++t)
    cpu::rms_norm(kv.data() + t * row, kv.data() + t * row, 1, r, layer.kv_a_norm.data(), kLatentNormEps);
  const cpu::RopeTable table = cpu::make_rope_table(rope_params, *std::max_element(positions.begin(), positions.end()) + 1);
  mla_rope(kv.data() + r, n, row, rope, m.rope_interleave, positions.data(), table);
  for (int64_t h = 0; h < heads; ++h)
    mla_rope(q.data() + h * qk + nope, n, heads * qk, rope, m.rope_interleave, positions.data(), table);

  for (const TokenSpan& s : sequences)
    for (int64_t t = 0; t < s.count; ++t)
      std::copy_n(kv.data() + (s.first + t) * row, row, s.cache->key_row(index, s.cache->length() + t));

  // The absorbed queries [n, heads, row]: [W_UK_h^T q_nope_h, q_pe_h].
  std::vector<float> qa(size_t(n * heads * row), 0.0f), part(size_t(n * std::max(nope, r))), lat(size_t(n * r));
  for (int64_t h = 0; h < heads; ++h) {
    if (nope > 0) {
      for (int64_t t = 0; t < n; ++t) std::copy_n(q.data() + (t * heads + h) * qk, nope, part.data() + t * nope);
      cpu::matmul(part.data(), n, layer.uk_t[size_t(h)], lat.data());
      for (int64_t t = 0; t < n; ++t) std::copy_n(lat.data() + t * r, r, qa.data() + (t * heads + h) * row);
    }
    for (int64_t t = 0; t < n; ++t)
      std::copy_n(q.data() + (t * heads + h) * qk + nope, rope, qa.data() + (t * heads + h) * row + r);
  }
  // One KV head of `row` floats; its values are the same rows (the output's last rope floats unused).
  std::vector<float> attended(size_t(n * heads * row));
  std::vector<cpu::AttentionSequence> on_cpu;
  for (const TokenSpan& s : sequences) {
    float* sq = qa.data() + s.first * heads * row;
    float* sout = attended.data() + s.first * heads * row;
    if (!attention_backend) {
      on_cpu.push_back({sq, s.cache->blocks(index), s.count, s.cache->length(), sout, nullptr});
      continue;
    }
    AttentionStep step;
    step.layer = index;
    step.q = sq;
    step.n = s.count;
    step.start = s.cache->length();
    step.n_heads = heads;
    step.n_kv_heads = 1;
    step.head_dim = row;
    step.scale = float(m.softmax_scale);
    attention_backend->attend(*s.cache, step, sout);
  }
  if (!on_cpu.empty()) cpu::attention(on_cpu, heads, 1, row, float(m.softmax_scale), 0);

  // Each head's value: W_UV_h (sum_j p_j c_j), into [n, heads * v_head_dim] for o_proj.
  std::vector<float> values(size_t(n * heads * dv)), head_out(size_t(n * dv));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t t = 0; t < n; ++t) std::copy_n(attended.data() + (t * heads + h) * row, r, lat.data() + t * r);
    cpu::matmul(lat.data(), n, layer.uv[size_t(h)], head_out.data());
    for (int64_t t = 0; t < n; ++t) std::copy_n(head_out.data() + t * dv, dv, values.data() + (t * heads + h) * dv);
  }
  linear(backend, values.data(), n, layer.o, out, or_null(layer.o_bias));
}

}  // namespace moe::model
