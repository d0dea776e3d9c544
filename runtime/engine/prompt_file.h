#pragma once
// Many prompts in one file, for `moe run --prompts`: one prompt a line as plain text, or a JSON
// object a line (JSONL) with options of its own:
//   {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "seed": 3,
//    "stop_token_ids": [2]}
// Unknown keys are refused (a typo would otherwise be a silently ignored option). Blank lines are
// skipped; a line that starts with '{' is JSON.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace moe::engine {

struct PromptSpec {
  int line = 0;  // 1-based, for messages
  std::string prompt;
  std::optional<int> max_new_tokens;
  std::optional<double> temperature, top_p;
  std::optional<uint64_t> seed;
  std::vector<int32_t> stop_tokens;  // beside the model's own end-of-sequence tokens
};

// Throws moe::Error(kInvalidArgument) naming the line for a malformed one, kNotFound/kIo for the
// file, and for a file with no prompt.
std::vector<PromptSpec> parse_prompts(const std::string& text);
std::vector<PromptSpec> read_prompt_file(const std::filesystem::path& path);

}  // namespace moe::engine
