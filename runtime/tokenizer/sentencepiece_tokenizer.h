#pragma once
// A SentencePiece tokenizer.model through libsentencepiece.
#include <filesystem>
#include <memory>

#include "runtime/tokenizer/bpe_tokenizer.h"

namespace moe::tokenizer {

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::filesystem::path& model_file,
                                                        const SpecialTokenConfig& special);

}  // namespace moe::tokenizer
