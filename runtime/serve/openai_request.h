#pragma once
// The bodies of POST /v1/completions and /v1/chat/completions, validated as OpenAI's API does:
// malformed JSON is a 400, a field of the wrong type or a missing required one a 422, an unknown
// field a 400 ("Unrecognized request argument"), a value out of range a 400, features this
// engine does not have (logprobs, n > 1, tools, penalties other than 0) a 400 naming them.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe::serve {

enum class Endpoint { kCompletions, kChat };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;
  // Completions: the prompt as text, or as token ids.
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_tokens;
  // Chat: the messages as the chat template takes them ({role, content} with content text).
  nlohmann::json messages;
  std::optional<int64_t> max_tokens;  // absent: 16 for completions, the context's rest for chat
  double temperature = 1.0, top_p = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
};

// Throws ApiError.
OpenAiRequest parse_openai_request(Endpoint endpoint, const std::string& body);

}  // namespace moe::serve
