#pragma once
// HOBBIT's importance of each routed assignment (arXiv 2411.01433), which decides how a missing
// expert is served: rank a token's chosen experts by gate weight, normalise the weights to sum 1,
// and score an expert by the normalised mass of itself and every expert ranked below it (one
// minus the cumulative weight of the experts above it). The token's top expert scores 1; an
// expert scores low when the experts above it already carry most of the token's weight.
#include <vector>

#include "runtime/model/routing.h"

namespace moe::offload {

// One score in [0, 1] per assignment of `routing`, in its order.
std::vector<float> hobbit_importance(const model::RoutingDecision& routing);

}  // namespace moe::offload
