// `moe trace import FILE -o TRACE`: router traces from other tools into the planner's format.
#include <fmt/format.h>

#include "placement/trace/importers.h"
#include "placement/trace/trace_io.h"
#include "runtime/core/output_path.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Options {
  std::string input, output, format = "auto";
  placement::ImportOptions import;
  bool raw = false, json = false;
};

void run(const Options& o) {
  refuse_overwriting(o.output, {o.input});
  placement::ImportReport report;
  const placement::Trace trace = placement::import_trace(o.input, o.format, o.import, &report);
  placement::write_trace(o.output, trace, fmt::format("imported from {} ({})", o.input, o.format),
                         o.raw ? placement::TraceCompression::kNone : placement::TraceCompression::kZstd);
  if (o.json) {
    print_json({{"trace", o.output}, {"model", trace.model.name}, {"layers", trace.model.num_layers},
                {"experts", trace.model.num_experts}, {"top_k", trace.model.top_k}, {"tokens", trace.tokens.size()},
                {"records", report.records}, {"gaps", trace.gaps}, {"restarted_positions", report.restarted_positions}});
    return;
  }
  fmt::print("{}: {} tokens from {} records, {} layers x {} experts (top-{}), {} gaps, {} restarted positions\n", o.output,
             trace.tokens.size(), report.records, trace.model.num_layers, trace.model.num_experts, trace.model.top_k,
             trace.gaps, report.restarted_positions);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("input", o->input, "JSONL, vLLM routed-experts (.npy/.json) or CSV gate matrix")->required()->check(CLI::ExistingFile);
  app.add_option("-o,--output", o->output, "trace file to write")->required();
  app.add_option("--format", o->format, "jsonl, vllm, csv or auto (by extension)")->check(CLI::IsMember({"auto", "jsonl", "vllm", "csv"}));
  app.add_option("--model-name", o->import.model_name, "model identity to record (default: the file's stem)");
  app.add_option("--layers", o->import.num_layers, "MoE layers of the model (default: the largest seen + 1)")->check(whole_number(1, 1 << 16));
  app.add_option("--experts", o->import.num_experts, "experts per layer (default: the largest seen + 1)")->check(whole_number(1, 1 << 16));
  app.add_option("--top-k", o->import.top_k, "CSV: experts chosen per row (default: every nonzero gate)")->check(whole_number(1, 1 << 16));
  app.add_flag("--uncompressed", o->raw, "write without zstd");
  app.add_flag("--json", o->json, "print one JSON document");
  app.callback([o] { run(*o); });
}

const CommandRegistration kTraceImport("trace", "import", "Convert a router trace from JSONL, vLLM arrays or CSV gates", setup);

}  // namespace
}  // namespace moe::tools
