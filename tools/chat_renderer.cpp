#include "tools/chat_renderer.h"

namespace moe::tools {

// Until the Jinja interpreter lands: every model gets the plain template.
serve::ChatRenderer chat_renderer(const std::filesystem::path&, const tokenizer::Tokenizer&) {
  return [](const nlohmann::json& messages, bool add_generation_prompt) {
    std::string out;
    for (const auto& m : messages)
      out += "<|" + m["role"].get<std::string>() + "|>\n" + m["content"].get<std::string>() + "\n";
    if (add_generation_prompt) out += "<|assistant|>\n";
    return out;
  };
}

}  // namespace moe::tools
