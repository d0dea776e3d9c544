// Any bytes as a router trace: the reader throws moe::Error or yields valid tokens, never crashes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "placement/trace/trace_io.h"
#include "runtime/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto trace = moe::placement::read_trace_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& t : trace.tokens) moe::placement::validate_token(trace.model, t, "fuzz");
  } catch (const moe::Error&) {
  }
  return 0;
}
