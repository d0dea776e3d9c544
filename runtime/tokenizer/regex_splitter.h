#pragma once
// Splits text by a PCRE2 regular expression (UTF, Unicode properties), as the Split and
// ByteLevel pre-tokenizers do.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::tokenizer {

class RegexSplitter {
 public:
  // Throws moe::Error(kCorrupt) when the pattern does not compile.
  explicit RegexSplitter(const std::string& pattern);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;

  // Matches and the text between them, in order; `keep_gaps` false drops the text between.
  void split(std::string_view text, bool keep_gaps, std::vector<std::string>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GPT-2's pre-tokenisation pattern (ByteLevel with use_regex).
extern const char* const kGpt2Pattern;

}  // namespace moe::tokenizer
