// `moe trace synth --model CONFIG -o TRACE`: made-up routing of a model's shape, for planning a
// model nobody here has run (placement/trace/synthetic_trace.h says how it is drawn).
#include <fmt/format.h>

#include "placement/cost/model_shape.h"
#include "placement/trace/synthetic_trace.h"
#include "placement/trace/trace_io.h"
#include "runtime/core/output_path.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Options {
  std::string model, output;
  placement::SyntheticRouting routing;
  bool json = false;
};

void run(Options o) {
  refuse_overwriting(o.output, {o.model});
  const placement::ModelShape shape = placement::load_model_shape(o.model);
  o.routing.model_name = shape.name;
  o.routing.layers = shape.num_sparse_layers;
  o.routing.experts = shape.num_experts;
  o.routing.top_k = shape.top_k;
  const placement::Trace trace = placement::synthetic_trace(o.routing);
  const std::string source = fmt::format("synthetic: Zipf skew {}, locality {}, seed {} (moe trace synth; not recorded routing)",
                                         o.routing.skew, o.routing.locality, o.routing.seed);
  placement::write_trace(o.output, trace, source, placement::TraceCompression::kZstd);
  if (o.json) {
    print_json({{"trace", o.output}, {"model", shape.name}, {"layers", shape.num_sparse_layers}, {"experts", shape.num_experts},
                {"top_k", shape.top_k}, {"tokens", trace.tokens.size()}, {"source", source}});
    return;
  }
  fmt::print("{}: {} tokens in {} sequences, {} layers x {} experts (top-{}); {}\n", o.output, trace.tokens.size(),
             o.routing.sequences, shape.num_sparse_layers, shape.num_experts, shape.top_k, source);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "model folder or config.json (its shape)")->required()->check(CLI::ExistingPath);
  app.add_option("-o,--output", o->output, "trace file to write")->required();
  app.add_option("--sequences", o->routing.sequences, "sequences (requests)")->capture_default_str()->check(whole_number<int64_t>(1, 1 << 20));
  app.add_option("--tokens", o->routing.tokens_per_sequence, "tokens per sequence")->capture_default_str()->check(whole_number<int64_t>(1, 1 << 20));
  app.add_option("--skew", o->routing.skew, "Zipf exponent of the experts' popularity in a layer (0: uniform)")
      ->capture_default_str()->check(number(0, 8));
  app.add_option("--locality", o->routing.locality, "chance a token repeats its predecessor's experts at a layer")
      ->capture_default_str()->check(number(0, 1));
  app.add_option("--seed", o->routing.seed, "random seed")->capture_default_str()->check(whole_number<uint64_t>(0));
  app.add_flag("--json", o->json, "print one JSON document");
  app.callback([o] { run(*o); });
}

const CommandRegistration kTraceSynth("trace", "synth", "Make up routing of a model's shape, for planning models not run here", setup);

}  // namespace
}  // namespace moe::tools
