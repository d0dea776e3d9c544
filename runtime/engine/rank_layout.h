#pragma once
// How the devices of a run divide among its processes (mpirun -np R): rank r owns devices
// [r * local_devices, (r + 1) * local_devices) of the plan's (or the run's) R x local_devices.
#include "placement/plan/plan_io.h"

namespace moe::engine {

struct RankLayout {
  int ranks = 1, rank = 0, local_devices = 1;
  int devices() const { return ranks * local_devices; }
};

// `devices_flag` is --devices: one rank's devices (1, its default, lets a plan's devices split
// evenly among the ranks). Throws moe::Error(kInvalidArgument) for a plan whose devices are not
// ranks x devices per rank; callers check it before reading any weight.
RankLayout rank_layout(int devices_flag, const placement::PlacementPlan* plan, int ranks, int rank);

// The same from the flags alone (the plan read from its file, which holds no weights).
RankLayout rank_layout_of_flags(int devices_flag, const std::string& plan_path, int ranks, int rank);

}  // namespace moe::engine
