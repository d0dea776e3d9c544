// Any bytes as a chat template, rendered with a fixed conversation: parse and render or throw
// moe::Error, never crash, hang or run out of memory.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/chat/chat_template.h"
#include "runtime/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json context = nlohmann::json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                 {"role": "assistant", "content": "Hello!", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                 {"role": "user", "content": "Bye"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
  try {
    const moe::chat::ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size));
    t.render(context);
  } catch (const moe::Error&) {
  }
  return 0;
}
