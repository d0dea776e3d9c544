// Any bytes as an expert store: header and manifest checks throw moe::Error, never crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "offload/store/store_format.h"
#include "runtime/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  try {
    const auto header = moe::offload::decode_header(bytes, size, "fuzz");
    moe::offload::decode_manifest(bytes, header, "fuzz");
  } catch (const moe::Error&) {
  }
  return 0;
}
