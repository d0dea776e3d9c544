#include "placement/plan/plan_nodes.h"

#include "runtime/core/error.h"

namespace moe::placement {

int plan_node_count(const PlacementPlan& plan) { return plan.nodes() > 0 ? plan.nodes() : 1; }

int plan_devices_per_node(const PlacementPlan& plan) {
  return plan.devices_per_node() > 0 ? plan.devices_per_node() : plan.devices_size();
}

int plan_node_of(const PlacementPlan& plan, int device) {
  MOE_CHECK(device >= 0 && device < plan.devices_size(), ErrorCode::kInvalidArgument, "device {} of a plan of {}", device,
            plan.devices_size());
  return plan.devices(device).node();
}

std::vector<int> plan_rank_nodes(const PlacementPlan& plan, int ranks, int local_devices) {
  MOE_CHECK(ranks > 0 && local_devices > 0 && int64_t(ranks) * local_devices == plan.devices_size(),
            ErrorCode::kInvalidArgument, "{} ranks of {} devices each do not match the plan's {} devices", ranks, local_devices,
            plan.devices_size());
  std::vector<int> nodes(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    const int first = r * local_devices, last = first + local_devices - 1;
    nodes[size_t(r)] = plan_node_of(plan, first);
    MOE_CHECK(plan_node_of(plan, last) == nodes[size_t(r)], ErrorCode::kInvalidArgument,
              "rank {} would own devices {} to {}, which the plan puts on nodes {} and {}", r, first, last, nodes[size_t(r)],
              plan_node_of(plan, last));
  }
  return nodes;
}

}  // namespace moe::placement
