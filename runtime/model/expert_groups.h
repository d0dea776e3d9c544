#pragma once
// The assignments of a routing decision grouped by expert: which token rows each expert must
// compute, and where each result goes.
#include <cstdint>
#include <vector>

#include "runtime/model/routing.h"

namespace moe::model {

struct ExpertGroup {
  int32_t expert = 0;
  std::vector<int32_t> tokens;       // rows of the layer input
  std::vector<int32_t> assignments;  // rows of the runner's output, same length
};

// One group per expert used, in ascending expert order.
std::vector<ExpertGroup> group_by_expert(const RoutingDecision& routing);

// Gathers `group.tokens` rows of x [*, hidden] into `rows` [tokens, hidden].
void gather_rows(const float* x, int64_t hidden, const ExpertGroup& group, std::vector<float>& rows);
// Writes rows [tokens, hidden] to out at `group.assignments`.
void scatter_rows(const float* rows, int64_t hidden, const ExpertGroup& group, float* out);

}  // namespace moe::model
