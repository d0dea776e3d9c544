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
//    (or, with top_k 0, every nonzero entry).
#include <filesystem>
#include <string>

#include "placement/trace/trace.h"

namespace moe::placement {

struct ImportOptions {
  std::string model_name;  // empty: the file's stem
  int num_layers = 0;      // 0: the largest layer seen + 1
  int num_experts = 0;     // 0: the largest expert seen + 1 (CSV: the number of gate columns)
  int top_k = 0;           // CSV only: experts chosen per row; 0 = every nonzero gate
};

struct ImportReport {
  int64_t records = 0;          // lines or rows read
  int64_t restarted_positions = 0;  // JSONL records that opened a second token at a position
};

Trace import_jsonl(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report = nullptr);
Trace import_vllm(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report = nullptr);
Trace import_csv_gates(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report = nullptr);

// format: "jsonl", "vllm", "csv" or "auto" (by extension: .jsonl, .npy/.json, .csv).
Trace import_trace(const std::filesystem::path& path, const std::string& format, const ImportOptions& options,
                   ImportReport* report = nullptr);

// A trace given as a trace file (trace_io.h) or as anything import_trace reads with "auto".
Trace load_any_trace(const std::filesystem::path& path);

}  // namespace moe::placement
