#include "runtime/model/weight_walk.h"

namespace moe::model {
namespace {

// One walk for both constnesses: W is ModelWeights or const ModelWeights.
template <typename W, typename Visit>
void walk(W& w, const Visit& visit) {
  const auto linear = [&](auto& l, WeightPart part) {
    if (l.weight.defined()) visit(l, part);
  };
  const auto mlp = [&](auto& m, WeightPart part) {
    linear(m.gate, part);
    linear(m.up, part);
    linear(m.down, part);
  };
  const auto attention = [&](auto& a) {
    for (auto* l : {&a.q, &a.k, &a.v, &a.o}) linear(*l, WeightPart::kDense);
  };
  for (auto& layer : w.layers) {
    attention(layer.attention);
    for (auto* l : {&layer.mla.q, &layer.mla.q_a, &layer.mla.q_b, &layer.mla.kv_a, &layer.mla.kv_b, &layer.mla.o})
      linear(*l, WeightPart::kDense);
    linear(layer.bam.router, WeightPart::kRouter);
    for (auto& a : layer.bam.experts) attention(a);
    linear(layer.bam.shared_k, WeightPart::kDense);
    linear(layer.bam.shared_v, WeightPart::kDense);
    linear(layer.ds.c_attn, WeightPart::kDense);
    linear(layer.ds.attn_proj, WeightPart::kDense);
    linear(layer.ds.attn_gate, WeightPart::kRouter);
    mlp(layer.dense_mlp, WeightPart::kDense);
    linear(layer.moe.router, WeightPart::kRouter);
    linear(layer.moe.router2, WeightPart::kRouter);
    linear(layer.moe.gate_map, WeightPart::kRouter);
    linear(layer.moe.shared_gate, WeightPart::kRouter);
    for (auto& k : layer.moe.constants) linear(k.mix, WeightPart::kRouter);
    mlp(layer.moe.shared, WeightPart::kDense);
    for (auto& e : layer.moe.experts) mlp(e, WeightPart::kExpert);
    for (auto& e : layer.moe.gpt_oss.cut) mlp(e, WeightPart::kExpert);  // the fused tensors are not matrices: not walked
  }
  linear(w.lm_head, WeightPart::kLmHead);
}

}  // namespace

MatrixTotals matrix_totals(const ModelWeights& weights, const loading::ModelConfig& config) {
  MatrixTotals t;
  const GatedMlp* expert = nullptr;
  for (const LayerWeights& l : weights.layers) {
    if (!expert && !l.moe.experts.empty()) expert = &l.moe.experts.front();
    if (!expert && !l.moe.gpt_oss.cut.empty()) expert = &l.moe.gpt_oss.cut.front();  // cut by a store or --weights
  }
  for_each_linear(weights, [&](const Linear& l, WeightPart part) {
    if (part == WeightPart::kExpert) return;
    t.resident_bytes += double(l.nbytes());
    (part == WeightPart::kLmHead ? t.lm_head_params : t.dense_params) += double(l.weight.numel());
  });
  if (expert) {
    for (const Linear* l : {&expert->gate, &expert->up, &expert->down}) {
      if (!l->weight.defined()) continue;  // a GeLU expert has no gate
      t.expert_bytes += double(l->nbytes());
      t.expert_params += double(l->weight.numel());
    }
  } else {
    t.expert_bytes = double(weight_bytes(config).per_expert);
    t.expert_params = t.expert_bytes / double(dtype_bytes(config.dtype, 1));
  }
  return t;
}

void for_each_linear(ModelWeights& weights, const std::function<void(Linear&, WeightPart)>& visit) { walk(weights, visit); }

void for_each_linear(const ModelWeights& weights, const std::function<void(const Linear&, WeightPart)>& visit) {
  walk(weights, visit);
}

}  // namespace moe::model
