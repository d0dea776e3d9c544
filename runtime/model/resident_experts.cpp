#include "runtime/model/resident_experts.h"

#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"

namespace moe::model {

ResidentExperts::ResidentExperts(const ModelWeights& weights, cpu::Activation act) {
  experts_.resize(weights.layers.size());
  for (size_t l = 0; l < weights.layers.size(); ++l)
    for (const GatedMlp& e : weights.layers[l].moe.experts) experts_[l].push_back(matrices_of(e, act));
}

void ResidentExperts::run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) {
  const auto& experts = experts_.at(size_t(layer));
  for (const ExpertGroup& group : group_by_expert(routing)) {
    MOE_CHECK(group.expert >= 0 && size_t(group.expert) < experts.size(), ErrorCode::kInternal,
              "layer {} has no resident expert {}", layer, group.expert);
    gather_rows(x, hidden, group, rows_);
    results_.resize(rows_.size());
    run_gated_mlp(experts[size_t(group.expert)], rows_.data(), int64_t(group.tokens.size()), results_.data(), scratch_);
    scatter_rows(results_.data(), hidden, group, out);
  }
}

}  // namespace moe::model
