#include "runtime/model/moe_plus_plus.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/combine.h"
#include "kernels/cpu/router.h"
#include "runtime/core/error.h"

namespace moe::model {

MoePlusPlusLayer moe_plus_plus_layer(const MoeWeights& w, const loading::ModelConfig& c) {
  MoePlusPlusLayer l;
  l.router = cpu::weight_matrix(w.router.weight);
  if (c.moe_plus_plus.two_layer_gate) l.router2 = cpu::weight_matrix(w.router2.weight);
  l.gate_map = cpu::weight_matrix(w.gate_map.weight);
  for (const ConstantExpert& k : w.constants) {
    const Tensor f = k.constant.to_f32();
    l.constants.emplace_back(f.data<float>(), f.data<float>() + f.numel());
    l.mixes.push_back(cpu::weight_matrix(k.mix.weight));
  }
  return l;
}

void moe_plus_plus_logits(const MoePlusPlusLayer& layer, const loading::ModelConfig& c, const float* x, int64_t n,
                          std::vector<float>& residual, float* logits) {
  const int64_t E = c.router_outputs();
  if (c.moe_plus_plus.two_layer_gate) {
    std::vector<float> hidden(static_cast<size_t>(n * 8 * E));
    cpu::matmul(x, n, layer.router, hidden.data());
    for (float& v : hidden) v = std::tanh(v);
    cpu::matmul(hidden.data(), n, layer.router2, logits);
  } else {
    cpu::matmul(x, n, layer.router, logits);
  }
  if (!residual.empty()) {
    MOE_ASSERT(int64_t(residual.size()) == n * E);
    std::vector<float> mapped(static_cast<size_t>(n * E));
    cpu::matmul(residual.data(), n, layer.gate_map, mapped.data());
    cpu::add(logits, mapped.data(), n * E);
  }
  residual.assign(logits, logits + n * E);
}

MoePlusPlusRouting moe_plus_plus_route(const loading::ModelConfig& c, const float* logits, int64_t n) {
  const auto& m = c.moe_plus_plus;
  const int64_t E = c.router_outputs();
  const int k = c.num_experts_per_tok;
  MoePlusPlusRouting r;
  r.zero_computation.resize(size_t(n));
  std::vector<float> row(static_cast<size_t>(E));
  std::vector<int32_t> ids(static_cast<size_t>(k));
  std::vector<float> values(static_cast<size_t>(k));
  for (int64_t t = 0; t < n; ++t) {
    std::copy_n(logits + t * E, E, row.begin());
    if (m.logits_norm) {  // torch: logits / (logits.std(unbiased) / target_std)
      double mean = 0, sq = 0;
      for (float v : row) mean += v;
      mean /= double(E);
      for (float v : row) sq += (v - mean) * (v - mean);
      const float scale = float(std::sqrt(sq / double(E - 1))) / float(m.gate_norm_std);
      for (float& v : row) v /= scale;
    }
    if (m.mixtral_gating) {
      cpu::top_k(row.data(), E, k, ids.data(), values.data());
      cpu::softmax_rows(values.data(), 1, k);
    } else {
      cpu::softmax_rows(row.data(), 1, E);
      cpu::top_k(row.data(), E, k, ids.data(), values.data());
      float sum = 0;
      for (int i = 0; i < k; ++i) {
        if (ids[size_t(i)] == E - 1) values[size_t(i)] = 0.0f;  // the zero expert's weight goes
        sum += values[size_t(i)];
      }
      for (float& v : values) v /= sum;
    }
    std::vector<int32_t> ffn_ids;
    std::vector<float> ffn_weights;
    for (int i = 0; i < k; ++i) {
      if (ids[size_t(i)] < c.num_experts) {
        ffn_ids.push_back(ids[size_t(i)]);
        ffn_weights.push_back(values[size_t(i)]);
      } else {
        r.zero_computation[size_t(t)].push_back({ids[size_t(i)], values[size_t(i)]});
      }
    }
    std::sort(r.zero_computation[size_t(t)].begin(), r.zero_computation[size_t(t)].end());
    r.ffn.add_token(ffn_ids, ffn_weights);
  }
  return r;
}

float moe_plus_plus_input_scale(const loading::ModelConfig& c) {
  const auto& m = c.moe_plus_plus;
  return (m.mixtral_gating || m.no_input_scaling) ? 1.0f : float(c.num_experts_per_tok);
}

void add_zero_computation_experts(const MoePlusPlusLayer& layer, const loading::ModelConfig& c,
                                  const MoePlusPlusRouting& routing, const float* xs, int64_t n, float* out) {
  const int64_t h = c.hidden_size;
  const int32_t first_constant = c.num_experts;
  const int32_t copy = first_constant + c.moe_plus_plus.constant_experts;
  std::vector<float> y(static_cast<size_t>(h));
  for (int64_t t = 0; t < n; ++t) {
    const float* x = xs + t * h;
    for (const auto& [expert, weight] : routing.zero_computation[size_t(t)]) {
      if (expert < copy) {  // constant: softmax(W x) mixes x and the learned vector
        const size_t index = size_t(expert - first_constant);
        float mix[2];
        cpu::matmul(x, 1, layer.mixes[index], mix);
        cpu::softmax_rows(mix, 1, 2);
        const std::vector<float>& v = layer.constants[index];
        for (int64_t i = 0; i < h; ++i) {
          const float a = mix[0] * x[i], b = mix[1] * v[size_t(i)];
          y[size_t(i)] = a + b;
        }
        cpu::axpy(out + t * h, y.data(), weight, h);
      } else if (expert == copy) {
        cpu::axpy(out + t * h, x, weight, h);
      }  // the zero expert: nothing
    }
  }
}

}  // namespace moe::model
