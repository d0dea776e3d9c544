#include "runtime/model/expert_groups.h"

#include <algorithm>
#include <map>

namespace moe::model {

std::vector<ExpertGroup> group_by_expert(const RoutingDecision& routing) {
  std::map<int32_t, ExpertGroup> by_expert;
  for (int64_t t = 0; t < routing.num_tokens(); ++t) {
    for (int32_t a = routing.offsets[size_t(t)]; a < routing.offsets[size_t(t) + 1]; ++a) {
      ExpertGroup& g = by_expert[routing.experts[size_t(a)]];
      g.expert = routing.experts[size_t(a)];
      g.tokens.push_back(static_cast<int32_t>(t));
      g.assignments.push_back(a);
    }
  }
  std::vector<ExpertGroup> groups;
  groups.reserve(by_expert.size());
  for (auto& [expert, group] : by_expert) groups.push_back(std::move(group));
  return groups;
}

void gather_rows(const float* x, int64_t hidden, const ExpertGroup& group, std::vector<float>& rows) {
  rows.resize(group.tokens.size() * size_t(hidden));
  for (size_t i = 0; i < group.tokens.size(); ++i)
    std::copy_n(x + int64_t{group.tokens[i]} * hidden, hidden, rows.data() + int64_t(i) * hidden);
}

void scatter_rows(const float* rows, int64_t hidden, const ExpertGroup& group, float* out) {
  for (size_t i = 0; i < group.assignments.size(); ++i)
    std::copy_n(rows + int64_t(i) * hidden, hidden, out + int64_t{group.assignments[i]} * hidden);
}

}  // namespace moe::model
