#pragma once
// Router traces recorded by other tools, read into a Trace:
//  - JSONL, one routing decision a line (the format of ../shared/data/traces/):
//      {"problem_id": 0, "layer": 3, "token_idx": 17, "experts": [7, 0], "gating_probs": [.8, .2]}
//    ("token_pos" may name the position; "dataset" joins "problem_id" to name the sequence).
//    A record whose (sequence, position, layer) was already seen starts a new token: decode
//    steps that restart positions at 0 stay separate tokens, in file order.
//  - vLLM's routed-experts arrays [tokens, layers, top_k], as .npy (integer dtypes) or JSON
//    (a nested array, or an object holding one under "routed_experts").
//  - CSV gate matrices: a header `layer_id,token_id,expert_0,...,expert_N`, one row per
//    (layer, token) with each expert's gate value; the chosen experts are the top_k largest
//    (or, with top_k 0, every nonzero entry). Per-layer files (one per layer, `layer_id` 0 in
//    every one, as some tools write them) take their layer from the file or folder name
//    (`layer_3/gates.csv`, `gates_layer3.csv`) or from ImportOptions::layer; several files are
//    merged into one trace by token_id.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "placement/trace/trace.h"

namespace moe::placement {

struct ImportOptions {
  std::string model_name;  // empty: the file's stem
  int num_layers = 0;      // 0: the largest layer seen + 1
  int num_experts = 0;     // 0: the largest expert seen + 1 (CSV: the number of gate columns)
  int top_k = 0;           // CSV only: experts chosen per row; 0 = every nonzero gate
  int layer = -1;          // CSV only: the layer of every row (one per-layer file); -1: from the
                           // file or folder name, else the layer_id column
};

struct ImportReport {
  int64_t records = 0;          // lines or rows read
  int64_t restarted_positions = 0;  // JSONL records that opened a second token at a position
};

Trace import_jsonl(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report = nullptr);
Trace import_vllm(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report = nullptr);
Trace import_csv_gates(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report = nullptr);
// Several CSV gate files, or folders of them (their *.csv, in name order), merged by token_id.
// A file whose rows all claim one layer takes the layer its name gives, if any. Throws
// moe::Error(kInvalidArgument) when the rows of several files (or of a model said to have
// several layers) all claim the same layer and nothing names the real ones.
Trace import_csv_gate_files(const std::vector<std::filesystem::path>& inputs, const ImportOptions& options,
                            ImportReport* report = nullptr);
// The layer a per-layer file's name gives: the last "layer<N>" ("layer_N", "layer-N") in its
// stem, else in its folder's name; nullopt when neither has one.
std::optional<int> layer_from_path(const std::filesystem::path& path);

// format: "jsonl", "vllm", "csv" or "auto" (by extension: .jsonl, .npy/.json, .csv; a folder: csv).
Trace import_trace(const std::filesystem::path& path, const std::string& format, const ImportOptions& options,
                   ImportReport* report = nullptr);

// A trace given as a trace file (trace_io.h) or as anything import_trace reads with "auto".
Trace load_any_trace(const std::filesystem::path& path);

}  // namespace moe::placement
