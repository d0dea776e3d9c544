// Any bytes as tokenizer.json (up to the first NUL) and a text (after it): the tokenizer is
// refused with moe::Error or it encodes the text into ids it can decode, never crashes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/tokenizer/bpe_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view("Hello, world! 123 \xe2\x82\xac") : input.substr(nul + 1);
  try {
    const auto tokenizer = moe::tokenizer::make_bpe_tokenizer(json, {}, "fuzz");
    const std::vector<int32_t> ids = tokenizer->encode(text);
    for (const int32_t id : ids) {
      if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();  // an id the model has no row for
    }
    (void)tokenizer->decode(ids);
    std::vector<int32_t> first(size_t(std::min(tokenizer->vocab_size(), 64)));
    for (size_t i = 0; i < first.size(); ++i) first[i] = int32_t(i);
    (void)tokenizer->decode(first, true);
  } catch (const moe::Error&) {
  }
  return 0;
}
