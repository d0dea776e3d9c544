#include "offload/executor/expert_backing.h"

#include "runtime/core/error.h"

namespace moe::offload {

ExpertBacking::ExpertBacking(const model::ModelWeights& weights) : weights_(weights) {
  bool first = true;
  for (const auto& layer : weights.layers)
    for (const auto& e : layer.moe.experts) {
      const ExpertLayout l = ExpertLayout::of(e);
      MOE_CHECK(first || l == layout_, ErrorCode::kUnsupported, "routed experts of different shapes or dtypes cannot be offloaded");
      layout_ = l;
      first = false;
    }
  MOE_CHECK(!first, ErrorCode::kInvalidArgument, "the model has no routed experts to offload");
}

const model::GatedMlp& ExpertBacking::expert(ExpertKey key) const {
  const auto& experts = weights_.layers.at(size_t(key.layer)).moe.experts;
  MOE_CHECK(key.expert >= 0 && size_t(key.expert) < experts.size(), ErrorCode::kInternal, "no expert ({}, {})", key.layer,
            key.expert);
  return experts[size_t(key.expert)];
}

void ExpertBacking::read(ExpertKey key, std::byte* dst) const {
  layout_.pack(expert(key), dst);
  bytes_read_ += layout_.bytes;
}

}  // namespace moe::offload
