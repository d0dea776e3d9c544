// `moe inspect PATH`: a model folder, an expert store, a router trace or a placement plan.
#include "runtime/core/error.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

void setup(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto options = std::make_shared<InspectOptions>();
  app.add_option("path", *path, "model folder, expert store, router trace or placement plan")->required();
  app.add_flag("--json", options->json, "print one machine-readable JSON document");
  app.add_option("--plot", options->plot_path, "write an SVG picture (traces: expert use per layer)");
  app.callback([path, options] {
    const std::filesystem::path p(*path);
    MOE_CHECK(std::filesystem::exists(p), ErrorCode::kNotFound, "{} does not exist", p.string());
    for (const auto& inspector : registered_inspectors()) {
      if (inspector.matches(p)) {
        inspector.run(p, *options);
        return;
      }
    }
    fail(ErrorCode::kInvalidArgument,
         "{} is not a model folder, expert store, router trace or placement plan", p.string());
  });
}

const CommandRegistration kInspect("", "inspect", "Describe a model, expert store, router trace or plan", setup);

}  // namespace
}  // namespace moe::tools
