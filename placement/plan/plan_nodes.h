#pragma once
// Which node each device of a plan is on, and how MPI ranks map onto a plan's devices. A plan
// from before 2026-12-02 (PlacementPlan.nodes == 0) is one node holding every device.
#include <vector>

#include "placement/plan/plan_io.h"

namespace moe::placement {

int plan_node_count(const PlacementPlan& plan);        // 1 for a plan without nodes
int plan_devices_per_node(const PlacementPlan& plan);  // all its devices for a plan without nodes
int plan_node_of(const PlacementPlan& plan, int device);

// `ranks` processes of `local_devices` devices each: rank r owns the plan's devices
// [r * local_devices, (r + 1) * local_devices). Returns each rank's node; throws
// moe::Error(kInvalidArgument) naming the rank when the ranks do not cover the plan's devices
// exactly or a rank's devices straddle two nodes.
std::vector<int> plan_rank_nodes(const PlacementPlan& plan, int ranks, int local_devices);

}  // namespace moe::placement
