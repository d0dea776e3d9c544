#include "tools/chat_renderer.h"

#include <memory>

#include "runtime/chat/chat_template.h"

namespace moe::tools {

serve::ChatRenderer chat_renderer(const std::filesystem::path& model_dir, const tokenizer::Tokenizer& tokenizer) {
  const std::optional<std::string> source = chat::load_chat_template(model_dir);
  auto tmpl = std::make_shared<const chat::ChatTemplate>(source ? *source : chat::fallback_chat_template());
  // The special tokens' text, as transformers passes bos_token and eos_token to the template.
  const auto text_of = [&](std::optional<int32_t> id) {
    if (!id) return std::string();
    const int32_t one = *id;
    return tokenizer.decode(std::span(&one, 1));
  };
  const std::string bos = text_of(tokenizer.bos_token_id()), eos = text_of(tokenizer.eos_token_id());
  return [tmpl, bos, eos](const nlohmann::json& messages, bool add_generation_prompt) {
    nlohmann::ordered_json context;
    context["messages"] = nlohmann::ordered_json::array();
    for (const auto& m : messages) {  // role and content first, as a client writes them
      nlohmann::ordered_json message;
      message["role"] = m["role"];
      message["content"] = m["content"];
      for (const auto& [key, value] : m.items())
        if (key != "role" && key != "content") message[key] = value;
      context["messages"].push_back(std::move(message));
    }
    context["add_generation_prompt"] = add_generation_prompt;
    context["bos_token"] = bos;
    context["eos_token"] = eos;
    return tmpl->render(context);
  };
}

}  // namespace moe::tools
