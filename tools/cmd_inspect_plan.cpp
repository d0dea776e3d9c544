// `moe inspect PLAN`: a placement plan's devices, tiers and prediction.
#include <fmt/format.h>

#include "placement/plan/plan_io.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

void inspect_plan(const std::filesystem::path& path, const InspectOptions& options) {
  const placement::PlacementPlan plan = placement::load_plan(path);
  if (options.json) {
    nlohmann::json doc = nlohmann::json::parse(placement::plan_to_json(plan));
    doc["kind"] = "plan";
    print_json(doc);
    return;
  }
  fmt::print("plan      {} ({} strategy)\n", path.string(), plan.strategy());
  for (const auto& line : plan.explanation()) fmt::print("  {}\n", line);
}

const InspectorRegistration kPlanInspector(
    "plan", [](const std::filesystem::path& p) { return std::filesystem::is_regular_file(p) && placement::is_plan_file(p); },
    inspect_plan);

}  // namespace
}  // namespace moe::tools
