// `moe trace import FILE... -o TRACE`: router traces from other tools into the planner's format
// (several CSV gate files, or folders of them, are merged into one trace).
#include <fmt/format.h>

#include <filesystem>

#include "placement/trace/importers.h"
#include "runtime/core/error.h"
#include "placement/trace/trace_io.h"
#include "runtime/core/output_path.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Options {
  std::vector<std::string> inputs;
  std::string output, format = "auto";
  placement::ImportOptions import;
  bool raw = false, json = false;
};

void run(const Options& o) {
  for (const auto& input : o.inputs) refuse_overwriting(o.output, {input});
  placement::ImportReport report;
  std::vector<std::filesystem::path> paths(o.inputs.begin(), o.inputs.end());
  bool csv = o.format == "csv";
  for (const auto& p : paths) csv = csv || std::filesystem::is_directory(p) || (o.format == "auto" && p.extension() == ".csv");
  MOE_CHECK(paths.size() == 1 || csv, ErrorCode::kInvalidArgument,
            "only CSV gate files can be merged; import the other formats one file at a time");
  MOE_CHECK(o.import.layer < 0 || csv, ErrorCode::kInvalidArgument, "--layer is for per-layer CSV gate files");
  const placement::Trace trace = csv ? placement::import_csv_gate_files(paths, o.import, &report)
                                     : placement::import_trace(paths[0], o.format, o.import, &report);
  std::string from = o.inputs[0];
  for (size_t i = 1; i < o.inputs.size(); ++i) from += " " + o.inputs[i];
  placement::write_trace(o.output, trace, fmt::format("imported from {} ({})", from, o.format),
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
  app.add_option("inputs", o->inputs,
                 "JSONL, vLLM routed-experts (.npy/.json) or CSV gate matrices; several CSV files or folders are merged")
      ->required()
      ->check(CLI::ExistingPath);
  app.add_option("-o,--output", o->output, "trace file to write")->required();
  app.add_option("--format", o->format, "jsonl, vllm, csv or auto (by extension)")->check(CLI::IsMember({"auto", "jsonl", "vllm", "csv"}));
  app.add_option("--model-name", o->import.model_name, "model identity to record (default: the file's stem)");
  app.add_option("--layers", o->import.num_layers, "MoE layers of the model (default: the largest seen + 1)")->check(whole_number(1, 1 << 16));
  app.add_option("--experts", o->import.num_experts, "experts per layer (default: the largest seen + 1)")->check(whole_number(1, 1 << 16));
  app.add_option("--top-k", o->import.top_k, "CSV: experts chosen per row (default: every nonzero gate)")->check(whole_number(1, 1 << 16));
  app.add_option("--layer", o->import.layer,
                 "CSV: the layer of every row of the one file given (per-layer files; default: from the file or folder name)")
      ->check(whole_number(0, 4095));
  app.add_flag("--uncompressed", o->raw, "write without zstd");
  app.add_flag("--json", o->json, "print one JSON document");
  app.callback([o] { run(*o); });
}

const CommandRegistration kTraceImport("trace", "import", "Convert a router trace from JSONL, vLLM arrays or CSV gates", setup);

}  // namespace
}  // namespace moe::tools
