#pragma once
// Placement plan files (schema in placement/proto/plan.proto): "MOEPLAN1" then one serialized
// PlacementPlan. Loading validates the plan's own consistency: every (layer, expert) placed
// exactly once, devices in range, every device within its memory budget.
#include <filesystem>
#include <string>

#include "placement/proto/plan.pb.h"

namespace moe::placement {

using PlacementPlan = proto::PlacementPlan;

void save_plan(const std::filesystem::path& path, const PlacementPlan& plan);  // atomic: .partial + rename
PlacementPlan load_plan(const std::filesystem::path& path);
bool is_plan_file(const std::filesystem::path& path);
// Throws moe::Error(kCorrupt) naming `where` and the broken rule.
void validate_plan(const PlacementPlan& plan, const std::string& where);
std::string plan_to_json(const PlacementPlan& plan);

const char* tier_name(proto::Tier tier);
// Bytes of one expert in `format` (the plan records the bf16 size; the others follow from it).
int64_t plan_expert_bytes(const PlacementPlan& plan, proto::Format format);

}  // namespace moe::placement
