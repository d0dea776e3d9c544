#pragma once
// How each device's expert slots divide between experts pinned for the whole run (the hottest in
// a routing trace) and a cache that follows the routing as it comes. Chosen by replaying routing
// the choice has not seen: the trace's sequences are split in two, the first half ranks the
// experts and the second is replayed through the simulator for each pinned share; the share with
// the best held-out hit rate wins (ties go to fewer pinned: the cache adapts, a pin does not).
// The winning plan pins by the whole trace. For the automatic tiers (runtime/engine/auto_tiers.h).
#include <string>
#include <vector>

#include "placement/cost/model_shape.h"
#include "placement/plan/plan_io.h"
#include "placement/sim/simulator.h"
#include "placement/trace/trace.h"

namespace moe::placement {

struct SlotSplit {
  PlacementPlan plan;          // cache_only_plan's homes, with the pinned experts on their devices
  int pinned_per_device = 0;
  double held_out_hit_rate = 0;    // of the chosen share (pinned and ready cache hits over uses)
  std::vector<std::string> why;    // one line per share tried, then the choice
};

// slots: experts each device holds in all (pinned + cache). Throws moe::Error(kInvalidArgument)
// when the trace's layers or experts do not match the shape.
SlotSplit choose_slot_split(const ModelShape& shape, const Trace& trace, int devices, int slots, const SimOptions& sim);

}  // namespace moe::placement
