// Any text as config.json: parse or throw moe::Error, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/core/error.h"
#include "runtime/loading/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moe::loading::parse_model_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const moe::Error&) {
  }
  return 0;
}
