#include "runtime/engine/prompt_file.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <sstream>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"

namespace moe::engine {
namespace {

PromptSpec parse_json_line(const std::string& line, int number) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kInvalidArgument, "prompts line {}: not valid JSON ({})", number, e.what());
  }
  MOE_CHECK(j.is_object(), ErrorCode::kInvalidArgument, "prompts line {}: a JSON line must be an object", number);
  PromptSpec p;
  p.line = number;
  const auto number_of = [&](const char* key, double low, double high) {
    const nlohmann::json& v = j[key];
    MOE_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= low && v.get<double>() <= high,
              ErrorCode::kInvalidArgument, "prompts line {}: \"{}\" must be a number from {} to {}", number, key, low, high);
    return v.get<double>();
  };
  const auto integer_of = [&](const char* key, double high) {
    const nlohmann::json& v = j[key];
    MOE_CHECK(v.is_number_integer() && v.get<double>() >= 0 && v.get<double>() <= high, ErrorCode::kInvalidArgument,
              "prompts line {}: \"{}\" must be a whole number from 0 to {}", number, key, high);
    return v;
  };
  for (const auto& [key, value] : j.items()) {
    if (key == "prompt") {
      MOE_CHECK(value.is_string(), ErrorCode::kInvalidArgument, "prompts line {}: \"prompt\" must be a string", number);
      p.prompt = value.get<std::string>();
    } else if (key == "max_tokens" || key == "max_new_tokens") {
      p.max_new_tokens = integer_of(key.c_str(), 1 << 24).get<int>();
    } else if (key == "temperature") {
      p.temperature = number_of("temperature", 0, 100);
    } else if (key == "top_p") {
      p.top_p = number_of("top_p", 0, 1);
    } else if (key == "seed") {
      p.seed = integer_of("seed", double(std::numeric_limits<uint64_t>::max())).get<uint64_t>();
    } else if (key == "stop_token_ids") {
      MOE_CHECK(value.is_array(), ErrorCode::kInvalidArgument, "prompts line {}: \"stop_token_ids\" must be an array", number);
      for (const nlohmann::json& t : value) {
        MOE_CHECK(t.is_number_integer() && t.get<int64_t>() >= 0 && t.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                  ErrorCode::kInvalidArgument, "prompts line {}: \"stop_token_ids\" must hold token ids", number);
        p.stop_tokens.push_back(t.get<int32_t>());
      }
    } else {
      fail(ErrorCode::kInvalidArgument,
           "prompts line {}: unknown key \"{}\" (known: prompt, max_tokens, temperature, top_p, seed, stop_token_ids)", number,
           key);
    }
  }
  MOE_CHECK(j.contains("prompt"), ErrorCode::kInvalidArgument, "prompts line {}: no \"prompt\"", number);
  return p;
}

}  // namespace

std::vector<PromptSpec> parse_prompts(const std::string& text) {
  std::vector<PromptSpec> prompts;
  std::istringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (line[first] == '{') {
      prompts.push_back(parse_json_line(line, number));
    } else {
      PromptSpec p;
      p.line = number;
      p.prompt = line;
      prompts.push_back(std::move(p));
    }
  }
  MOE_CHECK(!prompts.empty(), ErrorCode::kInvalidArgument, "the prompts file holds no prompt");
  return prompts;
}

std::vector<PromptSpec> read_prompt_file(const std::filesystem::path& path) { return parse_prompts(read_file(path, "prompts file")); }

}  // namespace moe::engine
