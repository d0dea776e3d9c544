#include "runtime/tokenizer/byte_level.h"

#include <unordered_map>

namespace moe::tokenizer {
namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// Printable Latin-1 bytes stand for themselves; the rest map to U+0100 upwards in order.
std::array<uint32_t, 256> code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cps[b] = printable ? b : next++;
  }
  return cps;
}

const std::unordered_map<uint32_t, unsigned char>& symbol_to_byte() {
  static const auto map = [] {
    std::unordered_map<uint32_t, unsigned char> m;
    const auto cps = code_points();
    for (int b = 0; b < 256; ++b) m[cps[size_t(b)]] = static_cast<unsigned char>(b);
    return m;
  }();
  return map;
}

}  // namespace

const std::array<std::string, 256>& byte_to_symbol() {
  static const auto table = [] {
    std::array<std::string, 256> t;
    const auto cps = code_points();
    for (size_t b = 0; b < 256; ++b) t[b] = utf8(cps[b]);
    return t;
  }();
  return table;
}

void symbols_to_bytes(std::string_view text, std::string& out) {
  const auto& map = symbol_to_byte();
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len && i + k < text.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    const auto it = map.find(cp);
    if (it != map.end()) {
      out += static_cast<char>(it->second);
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
}

}  // namespace moe::tokenizer
