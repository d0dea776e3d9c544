// Any bytes as a `moe run --prompts` file: parse or throw moe::Error, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/core/error.h"
#include "runtime/engine/prompt_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moe::engine::parse_prompts(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const moe::Error&) {
  }
  return 0;
}
