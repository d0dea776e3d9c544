#pragma once
// A Hugging Face tokenizer.json with a BPE model: byte-level (GPT-2, Qwen, OLMoE, DeepSeek)
// pre-tokenisation by ByteLevel and Split regexes, added and special tokens, and the BOS that
// the post-processor template or tokenizer_config.json asks for.
#include <memory>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"

namespace moe::tokenizer {

struct SpecialTokenConfig {  // from tokenizer_config.json
  std::optional<std::string> bos_token, eos_token;
  std::optional<bool> add_bos_token;
};

// Throws moe::Error(kCorrupt) for malformed JSON, (kUnsupported) for a model or component
// this reader does not implement, naming `source`.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(std::string_view json_text, const SpecialTokenConfig& special,
                                              std::string_view source);

}  // namespace moe::tokenizer
