#include "runtime/engine/rank_layout.h"

#include "runtime/core/error.h"

namespace moe::engine {

RankLayout rank_layout(int devices_flag, const placement::PlacementPlan* plan, int ranks, int rank) {
  MOE_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, ErrorCode::kInternal, "rank {} of {}", rank, ranks);
  RankLayout layout{ranks, rank, devices_flag};
  if (!plan) return layout;
  const int planned = plan->devices_size();
  if (ranks == 1) {
    MOE_CHECK(devices_flag == 1 || devices_flag == planned, ErrorCode::kInvalidArgument,
              "the plan places experts on {} devices, --devices is {}", planned, devices_flag);
    layout.local_devices = planned;
    return layout;
  }
  if (devices_flag == 1 && planned % ranks == 0) layout.local_devices = planned / ranks;
  MOE_CHECK(layout.devices() == planned, ErrorCode::kInvalidArgument,
            "the plan places experts on {} devices, but {} ranks x {} devices each (--devices) make {}: plan for {} devices "
            "(moe plan --devices) or launch as many ranks as divide them",
            planned, ranks, layout.local_devices, layout.devices(), layout.devices());
  return layout;
}

RankLayout rank_layout_of_flags(int devices_flag, const std::string& plan_path, int ranks, int rank) {
  if (plan_path.empty()) return rank_layout(devices_flag, nullptr, ranks, rank);
  const placement::PlacementPlan plan = placement::load_plan(plan_path);
  return rank_layout(devices_flag, &plan, ranks, rank);
}

}  // namespace moe::engine
