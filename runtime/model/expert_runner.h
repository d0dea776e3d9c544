#pragma once
// Computes the routed experts of one MoE layer. The transformer hands over the normalised
// hidden states and the routing decision; the runner writes each (token, expert) output row in
// the decision's assignment order. Where the expert weights come from (resident, an expert
// cache fed from host memory or NVMe, another device) is the runner's business, which is how
// the offloading executor plugs into the same forward pass.
#include <cstdint>

#include "runtime/model/routing.h"

namespace moe::model {

class ExpertRunner {
 public:
  virtual ~ExpertRunner() = default;
  // x: [routing.num_tokens(), hidden]; out: [routing.num_assignments(), hidden].
  virtual void run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) = 0;
};

}  // namespace moe::model
