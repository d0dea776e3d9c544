#pragma once
// The plain expert runner: every routed expert's weights are in memory (the checkpoint's
// mapping), computed one expert at a time on the CPU.
#include <vector>

#include "runtime/model/expert_runner.h"
#include "runtime/model/gated_mlp.h"
#include "runtime/model/weights.h"

namespace moe::model {

class ResidentExperts final : public ExpertRunner {
 public:
  ResidentExperts(const ModelWeights& weights, cpu::Activation act = cpu::Activation::kSilu);
  void run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) override;

 private:
  std::vector<std::vector<GatedMlpMatrices>> experts_;  // [layer][expert]; empty for dense layers
  std::vector<float> rows_, results_, scratch_;
};

}  // namespace moe::model
