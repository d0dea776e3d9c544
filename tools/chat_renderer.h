#pragma once
// The chat renderer `moe serve` hands its API: the model folder's chat template, or the plain
// fallback for models without one, with the tokenizer's BOS and EOS as the template expects.
#include <filesystem>

#include "runtime/serve/openai_server.h"
#include "runtime/tokenizer/tokenizer.h"

namespace moe::tools {

serve::ChatRenderer chat_renderer(const std::filesystem::path& model_dir, const tokenizer::Tokenizer& tokenizer);

}  // namespace moe::tools
