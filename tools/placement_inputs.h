#pragma once
// Inputs shared by `moe plan` and `moe sim`: a trace given as a trace file or as anything the
// importers read (so the shared JSONL traces work directly).
#include <filesystem>

#include "placement/trace/importers.h"
#include "placement/trace/trace_io.h"

namespace moe::tools {

inline placement::Trace load_any_trace(const std::filesystem::path& path) {
  if (placement::is_trace_file(path)) return placement::read_trace(path);
  return placement::import_trace(path, "auto", {});
}

}  // namespace moe::tools
