// `moe plan`: where every expert lives, from a model's shapes, a router trace and a machine.
#include <fmt/format.h>

#include <sstream>

#include "placement/cost/model_shape.h"
#include "placement/hardware/hardware_profile.h"
#include "placement/plan/planner.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "placement/trace/importers.h"

namespace moe::tools {
namespace {

struct Options {
  std::string model, trace, hardware, output, formats, dense_format;  // empty: the release's (ModelShape)
  placement::PlannerOptions planner;
  bool json = false, explain = false;
};

void run(Options& o) {
  const placement::ModelShape shape = placement::load_model_shape(o.model);
  const placement::Trace trace = placement::load_any_trace(o.trace);
  const placement::HardwareProfile hw = placement::load_hardware_profile(o.hardware);
  o.planner.formats.clear();
  std::stringstream list(o.formats.empty() ? placement::format_name(shape.released_format) : o.formats);
  for (std::string f; std::getline(list, f, ',');) o.planner.formats.push_back(placement::parse_expert_format(f));
  o.planner.dense_format = o.dense_format.empty() ? shape.released_dense_format : placement::parse_expert_format(o.dense_format);
  const placement::PlacementPlan plan = placement::make_plan(shape, trace, hw, o.planner);
  placement::save_plan(o.output, plan);
  if (o.json) {
    print_json(nlohmann::json::parse(placement::plan_to_json(plan)));
    return;
  }
  const auto& p = plan.prediction();
  const bool bound = placement::prefetch_is_oracle(o.planner.sim.prefetch);
  fmt::print("{}: {:.2f} tokens/s {} ({:.1f}% of expert uses on the GPU and ready)\n", o.output, p.tokens_per_second(),
             bound ? "at most (an upper bound: the oracle prefetcher reads the trace)" : "predicted", 100 * p.gpu_hit_rate());
  if (plan.nodes() > 1)
    fmt::print("  {} nodes of {} GPUs: {:.1f} KB a token across nodes in-sample{}\n", plan.nodes(), plan.devices_per_node(),
               p.inter_node_bytes() / 1e3,
               plan.has_held_out() ? fmt::format(", {:.1f} KB held out (uniform plan {:.1f})",
                                                 plan.held_out().inter_node_bytes() / 1e3,
                                                 plan.held_out_uniform().inter_node_bytes() / 1e3)
                                   : std::string());
  if (o.explain)
    for (const auto& line : plan.explanation()) fmt::print("  {}\n", line);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "model folder or config.json (only its shapes are read)")->required();
  app.add_option("--trace", o->trace, "router trace (a trace file, or JSONL/vLLM/CSV to import)")->required()->check(CLI::ExistingFile);
  app.add_option("--hardware", o->hardware, "hardware profile: a file, or a name in configs/hardware/")->required();
  app.add_option("-o,--output", o->output, "plan file to write")->required();
  app.add_option("--batch", o->planner.batch, "sequences decoded together")->check(whole_number(1, 1 << 16));
  app.add_option("--context", o->planner.context, "tokens of context per sequence (sizes the KV cache)")->check(whole_number(1, 1 << 24));
  app.add_option("--devices", o->planner.devices, "GPUs to use (default: all of the profile's; with several nodes, up to one "
                 "node's or a multiple of it)")->check(whole_number(1, 1024));
  app.add_option("--formats", o->formats, "expert formats allowed, comma-separated: bf16, fp8 (e4m3, an f32 scale per 128x128 "
                 "block), mxfp4 (4.25 bits), int8, int4 (lossy copies, moe pack --formats); default: the model's release "
                 "(its config's quantization_config: fp8 for DeepSeek-V3/Kimi-K2, mxfp4 for gpt-oss, else bf16)");
  app.add_option("--dense-format", o->dense_format, "format of the dense weights on the GPU: bf16, fp8, int8 or int4 (int8/int4 "
                 "as moe run --weights F --quantize all; lossy); default: the release's (fp8 for FP8 releases, else bf16)")
      ->check(CLI::IsMember({"bf16", "fp8", "int8", "int4"}));
  app.add_option("--strategy", o->planner.strategy, "optimized, frequency or uniform")
      ->check(CLI::IsMember({"optimized", "frequency", "uniform"}));
  app.add_option("--pinned-share", o->planner.pinned_share, "fix the share of GPU expert memory pinned (0..1) instead of searching")
      ->check(number(0, 1));
  app.add_option("--policy", o->planner.sim.policy, "cache policy the prediction assumes (lru, lfu, multi)");
  app.add_option("--miss", o->planner.sim.miss, "what the prediction does with a missed expert: wait (copy it) or cpu "
                 "(compute it on the host, as moe run --miss cpu)")->check(CLI::IsMember({"wait", "cpu"}));
  app.add_option("--admission", o->planner.sim.admission, "cache admission the prediction assumes (frequency, all)")
      ->check(CLI::IsMember({"frequency", "all"}))->capture_default_str();
  app.add_option("--prefetch", o->planner.sim.prefetch,
                 "prefetcher the prediction assumes: none (default); gate (the guesses moe profile recorded in the trace); "
                 "stats, history or popularity (learnt from the first half of the trace's sequences, the plan judged on the "
                 "rest); NAME:D for D layers ahead; or oracle (reads the trace: an upper bound)");
  app.add_option("--exchange", o->planner.sim.exchange,
                 "the expert exchange the prediction assumes: dispatch-combine (rows to the experts' GPUs and back) or "
                 "results-to-all (the engine's MPI exchange today; no placement keeps rows off the network)")
      ->check(CLI::IsMember({"dispatch-combine", "results-to-all"}))->capture_default_str();
  app.add_flag("--explain", o->explain, "say where the memory and the time go");
  app.add_flag("--json", o->json, "print the plan as JSON");
  app.callback([o] { run(*o); });
}

const CommandRegistration kPlan("", "plan", "Choose where every expert lives, from a trace and a hardware profile", setup);

}  // namespace
}  // namespace moe::tools
