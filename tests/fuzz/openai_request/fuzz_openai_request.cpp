// Any bytes as the body of POST /v1/completions and /v1/chat/completions: a request or an
// ApiError, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/serve/api_error.h"
#include "runtime/serve/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const auto endpoint : {moe::serve::Endpoint::kCompletions, moe::serve::Endpoint::kChat}) {
    try {
      moe::serve::parse_openai_request(endpoint, body);
    } catch (const moe::serve::ApiError& e) {
      (void)e.body();
    }
  }
  return 0;
}
