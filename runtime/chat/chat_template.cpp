#include "runtime/chat/chat_template.h"

#include <new>

#include "runtime/chat/jinja_eval.h"
#include "runtime/chat/jinja_parser.h"
#include "runtime/core/error.h"
#include "runtime/core/read_file.h"

namespace moe::chat {

ChatTemplate::ChatTemplate(std::string source) : source_(std::move(source)) {
  body_ = std::make_shared<const jinja::Body>(jinja::parse(source_));
}

std::string ChatTemplate::render(const nlohmann::json& context) const { return render_json(context); }
std::string ChatTemplate::render(const nlohmann::ordered_json& context) const { return render_json(context); }

template <typename Json>
std::string ChatTemplate::render_json(const Json& context) const {
  MOE_CHECK(context.is_object(), ErrorCode::kInvalidArgument, "the chat template context must be a JSON object");
  auto globals = std::make_shared<jinja::Scope>();
  jinja::add_globals(*globals);
  // The render variables sit above the globals, as jinja2's context does; top-level {% set %}
  // writes there too.
  auto root = std::make_shared<jinja::Scope>();
  root->parent = globals;
  for (const auto& [key, value] : context.items()) root->vars[key] = jinja::Value::from_json(value);
  try {
    jinja::Evaluator eval(root, now_);
    return eval.render(*body_);
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::kInvalidArgument, "the chat template needs more memory than it may use");
  } catch (const std::exception& e) {
    fail(ErrorCode::kInvalidArgument, "chat template error: {}", e.what());
  }
}

std::optional<std::string> load_chat_template(const std::filesystem::path& model_dir) {
  const auto config_path = model_dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(read_file(config_path, "tokenizer config"));
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kCorrupt, "{} is not valid JSON: {}", config_path.string(), e.what());
    }
    if (doc.is_object() && doc.contains("chat_template")) {
      const auto& t = doc.at("chat_template");
      if (t.is_string()) return t.get<std::string>();
      if (t.is_array()) {
        for (const auto& named : t)
          if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
              named.at("template").is_string())
            return named.at("template").get<std::string>();
      }
    }
  }
  const auto jinja_path = model_dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_path)) return read_file(jinja_path, "chat template");
  const auto json_path = model_dir / "chat_template.json";
  if (std::filesystem::exists(json_path)) {
    try {
      const auto doc = nlohmann::json::parse(read_file(json_path, "chat template"));
      if (doc.is_object() && doc.contains("chat_template") && doc.at("chat_template").is_string())
        return doc.at("chat_template").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kCorrupt, "{} is not valid JSON: {}", json_path.string(), e.what());
    }
  }
  return std::nullopt;
}

std::string fallback_chat_template() {
  return "{% for message in messages %}{{ '<|' ~ message['role'] ~ '|>\\n' ~ message['content'] ~ '\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
}

}  // namespace moe::chat
