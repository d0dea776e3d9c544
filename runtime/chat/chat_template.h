#pragma once
// Chat templates: the Jinja programs Hugging Face models ship to turn a conversation into a
// prompt, rendered as transformers renders them (jinja2's ImmutableSandboxedEnvironment with
// trim_blocks, lstrip_blocks and loop controls; tojson as json.dumps(ensure_ascii=False)).
#include <nlohmann/json.hpp>

#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moe::chat {

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  // Parses a Jinja template; throws moe::Error(ErrorCode::kInvalidArgument) with a one-sentence
  // message naming the line for a syntax error.
  explicit ChatTemplate(std::string source);

  // Renders with the variables of `context` (a JSON object: messages, add_generation_prompt,
  // bos_token, eos_token, tools, ...). raise_exception("msg") throws moe::Error(kInvalidArgument)
  // with that message; other runtime errors throw moe::Error(kInvalidArgument) too, as does a
  // render that runs, nests or grows past its limits (16 MiB of output).
  std::string render(const nlohmann::json& context) const;
  // The same, keeping the order of the context's object keys (nlohmann::json sorts them; Python
  // dicts, and so tojson and dict iteration in jinja2, keep insertion order). Servers that parse
  // request bodies should parse into ordered_json and call this one.
  std::string render(const nlohmann::ordered_json& context) const;

  // Fixes the time strftime_now() formats (local time by default), for reproducible prompts.
  void set_now(const std::tm& now) { now_ = now; }

  const std::string& source() const { return source_; }

 private:
  template <typename Json>
  std::string render_json(const Json& context) const;

  std::string source_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
  std::optional<std::tm> now_;
};

// The chat template of a Hugging Face model folder: tokenizer_config.json's "chat_template" (a
// string, or a list of {"name", "template"} objects: the "default" one), else chat_template.jinja
// (or chat_template.json's "chat_template"); std::nullopt when there is none. Throws
// moe::Error(kCorrupt) for a tokenizer_config.json that is not JSON.
std::optional<std::string> load_chat_template(const std::filesystem::path& model_dir);

// A plain template for models that have none (the project's trained tiny models): each message as
// "<|role|>\ncontent\n", and "<|assistant|>\n" when add_generation_prompt.
std::string fallback_chat_template();

}  // namespace moe::chat
