#pragma once
// GPT-2's reversible map between bytes and printable Unicode characters, used by byte-level
// BPE so that every byte sequence is a string of vocabulary symbols.
#include <array>
#include <string>
#include <string_view>

namespace moe::tokenizer {

// UTF-8 of the character standing for each byte.
const std::array<std::string, 256>& byte_to_symbol();
// Appends the bytes the symbols of `text` stand for; characters outside the map are copied.
void symbols_to_bytes(std::string_view text, std::string& out);

}  // namespace moe::tokenizer
