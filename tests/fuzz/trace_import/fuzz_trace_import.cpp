// Any bytes as a router trace of another tool (the first byte picks the format: JSONL, vLLM's
// JSON or .npy arrays, CSV gate matrices): the importer yields tokens its own reader accepts
// or throws moe::Error, never crashes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "placement/trace/importers.h"
#include "placement/trace/trace_io.h"
#include "runtime/core/error.h"
#include "tests/fuzz/fuzz_temp_path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  struct Format {
    const char* name;
    const char* file;
  };
  static constexpr std::array<Format, 4> kFormats{
      {{"jsonl", "input.jsonl"}, {"vllm", "input.json"}, {"vllm", "input.npy"}, {"csv", "input.csv"}}};
  const Format& format = kFormats[data[0] % kFormats.size()];
  const std::filesystem::path path = moe::fuzz::scratch_dir() / format.file;
  moe::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  moe::placement::ImportOptions options;
  options.top_k = data[0] / 4 % 3;  // CSV: every nonzero gate, top-1 or top-2
  moe::placement::Trace trace;
  try {
    trace = moe::placement::import_trace(path, format.name, options);
  } catch (const moe::Error&) {
    return 0;
  }
  try {  // what was imported, the trace reader must accept
    for (const auto& t : trace.tokens) moe::placement::validate_token(trace.model, t, "fuzz");
  } catch (const moe::Error&) {
    __builtin_trap();
  }
  return 0;
}
