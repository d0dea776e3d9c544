// Any bytes as a safetensors file: parse or throw moe::Error, never crash or hang.
#include <cstddef>
#include <cstdint>

#include "runtime/core/error.h"
#include "runtime/loading/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moe::loading::parse_safetensors_header(std::span(reinterpret_cast<const std::byte*>(data), size), size, "fuzz");
  } catch (const moe::Error&) {
  }
  return 0;
}
