#include "runtime/serve/openai_request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <set>

#include "runtime/serve/api_error.h"

namespace moe::serve {
namespace {

using nlohmann::json;

[[noreturn]] void wrong_type(const std::string& field, const char* want) {
  throw ApiError(422, fmt::format("'{}' must be {}", field, want), field);
}

double number(const json& v, const std::string& field, double low, double high) {
  if (!v.is_number()) wrong_type(field, "a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < low || x > high)
    throw ApiError(400, fmt::format("'{}' must be from {} to {}; got {}", field, low, high, x), field);
  return x;
}

int64_t integer(const json& v, const std::string& field, int64_t low, int64_t high) {
  if (!v.is_number_integer()) wrong_type(field, "an integer");
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(high) : (v.get<int64_t>() < low || v.get<int64_t>() > high))
    throw ApiError(400, fmt::format("'{}' must be from {} to {}", field, low, high), field);
  return v.get<int64_t>();
}

bool boolean(const json& v, const std::string& field) {
  if (!v.is_boolean()) wrong_type(field, "a boolean");
  return v.get<bool>();
}

std::vector<int32_t> token_list(const json& v, const std::string& field) {
  std::vector<int32_t> ids;
  for (const json& t : v) ids.push_back(int32_t(integer(t, field, 0, std::numeric_limits<int32_t>::max())));
  return ids;
}

// The text of a message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& content, const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return {};
  if (!content.is_array()) wrong_type(field, "a string or an array of content parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      wrong_type(field, "an array of content parts with a 'type'");
    if (part["type"] != "text")
      throw ApiError(400, fmt::format("content parts of type '{}' are not supported (text only)", part["type"].get<std::string>()),
                     field);
    if (!part.contains("text") || !part["text"].is_string()) wrong_type(field + ".text", "a string");
    text += part["text"].get<std::string>();
  }
  return text;
}

json parse_messages(const json& v) {
  if (!v.is_array()) wrong_type("messages", "an array");
  if (v.empty()) throw ApiError(400, "'messages' must hold at least one message", "messages");
  static const std::set<std::string> roles = {"system", "developer", "user", "assistant", "tool"};
  json out = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string field = fmt::format("messages[{}]", i);
    const json& m = v[i];
    if (!m.is_object()) wrong_type(field, "an object");
    if (!m.contains("role")) throw ApiError(422, fmt::format("'{}.role' is required", field), field + ".role");
    if (!m["role"].is_string()) wrong_type(field + ".role", "a string");
    const std::string role = m["role"].get<std::string>();
    if (!roles.count(role))
      throw ApiError(400, fmt::format("'{}.role' must be system, developer, user, assistant or tool; got '{}'", field, role),
                     field + ".role");
    json message = {{"role", role}, {"content", content_text(m.contains("content") ? m["content"] : json(), field + ".content")}};
    for (const auto& [key, value] : m.items()) {
      if (key == "role" || key == "content") continue;
      if (key == "name") {
        if (!value.is_string()) wrong_type(field + ".name", "a string");
        message["name"] = value;
      } else if (key == "tool_calls" || key == "tool_call_id" || key == "function_call") {
        throw ApiError(400, fmt::format("'{}.{}': tools are not supported", field, key), field + "." + key);
      } else {
        throw ApiError(400, fmt::format("Unrecognized argument in '{}': {}", field, key), field + "." + key);
      }
    }
    out.push_back(std::move(message));
  }
  return out;
}

}  // namespace

OpenAiRequest parse_openai_request(Endpoint endpoint, const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  OpenAiRequest r;
  r.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::kChat;
  if (!j.contains("model")) throw ApiError(422, "'model' is required", "model");
  if (chat && !j.contains("messages")) throw ApiError(422, "'messages' is required", "messages");
  if (!chat && !j.contains("prompt")) throw ApiError(422, "'prompt' is required", "prompt");
  for (const auto& [key, v] : j.items()) {
    if (key == "model") {
      if (!v.is_string()) wrong_type(key, "a string");
      r.model = v.get<std::string>();
    } else if (key == "prompt" && !chat) {
      if (v.is_string()) {
        r.prompt_text = v.get<std::string>();
      } else if (v.is_array() && v.size() == 1 && v[0].is_string()) {
        r.prompt_text = v[0].get<std::string>();
      } else if (v.is_array() && !v.empty() && v[0].is_number()) {
        r.prompt_tokens = token_list(v, key);
      } else if (v.is_array() && v.size() == 1 && v[0].is_array()) {
        r.prompt_tokens = token_list(v[0], key);
      } else if (v.is_array() && v.size() > 1) {
        throw ApiError(400, "a batch of prompts in one request is not supported: send one request per prompt", key);
      } else {
        wrong_type(key, "a string, an array of one string, or an array of token ids");
      }
    } else if (key == "messages" && chat) {
      r.messages = parse_messages(v);
    } else if (key == "max_tokens" || (chat && key == "max_completion_tokens")) {
      if (!v.is_null()) r.max_tokens = integer(v, key, 0, int64_t(1) << 30);
    } else if (key == "temperature") {
      if (!v.is_null()) r.temperature = number(v, key, 0, 2);
    } else if (key == "top_p") {
      if (!v.is_null()) r.top_p = number(v, key, 0, 1);
      if (r.top_p == 0) throw ApiError(400, "'top_p' must be above 0", key);
    } else if (key == "seed") {
      if (!v.is_null()) r.seed = uint64_t(integer(v, key, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
    } else if (key == "stream") {
      if (!v.is_null()) r.stream = boolean(v, key);
    } else if (key == "stream_options") {
      if (v.is_null()) continue;
      if (!v.is_object()) wrong_type(key, "an object");
      for (const auto& [k, x] : v.items()) {
        if (k != "include_usage") throw ApiError(400, fmt::format("Unrecognized argument in 'stream_options': {}", k), key);
        r.include_usage = boolean(x, "stream_options.include_usage");
      }
    } else if (key == "stop") {
      if (v.is_null()) continue;
      if (v.is_string()) {
        r.stop.push_back(v.get<std::string>());
      } else if (v.is_array()) {
        if (v.size() > 4) throw ApiError(400, "'stop' takes at most 4 sequences", key);
        for (const json& s : v) {
          if (!s.is_string()) wrong_type(key, "a string or an array of strings");
          r.stop.push_back(s.get<std::string>());
        }
      } else {
        wrong_type(key, "a string or an array of strings");
      }
      for (const std::string& s : r.stop)
        if (s.empty()) throw ApiError(400, "'stop' sequences must not be empty", key);
    } else if (key == "n") {
      if (!v.is_null() && integer(v, key, 1, 128) != 1) throw ApiError(400, "only n = 1 is supported", key);
    } else if (key == "presence_penalty" || key == "frequency_penalty") {
      if (!v.is_null() && number(v, key, -2, 2) != 0) throw ApiError(400, fmt::format("'{}' other than 0 is not supported", key), key);
    } else if (key == "logprobs" || key == "top_logprobs" || key == "echo" || key == "best_of" || key == "suffix" ||
               key == "logit_bias" || key == "tools" || key == "tool_choice" || key == "functions" || key == "function_call" ||
               key == "parallel_tool_calls") {
      const bool off = v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_array() && v.empty()) ||
                       (v.is_object() && v.empty()) || (key == "best_of" && v == 1) || (key == "tool_choice" && v == "none");
      if (!off) throw ApiError(400, fmt::format("'{}' is not supported", key), key);
    } else if (key == "response_format") {
      if (!v.is_null() && !(v.is_object() && v.value("type", "") == "text"))
        throw ApiError(400, "'response_format' other than {\"type\": \"text\"} is not supported", key);
    } else if (key == "user" || key == "metadata" || key == "store" || key == "service_tier") {
      // accepted and unused, as OpenAI's own server records them
    } else {
      throw ApiError(400, fmt::format("Unrecognized request argument supplied: {}", key), key);
    }
  }
  if (!chat && !r.prompt_text && r.prompt_tokens.empty()) throw ApiError(400, "'prompt' must not be empty", "prompt");
  return r;
}

}  // namespace moe::serve
