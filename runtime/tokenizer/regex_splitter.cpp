#include "runtime/tokenizer/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "runtime/core/error.h"

namespace moe::tokenizer {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                              &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail(ErrorCode::kCorrupt, "pre-tokenizer regex does not compile at offset {}: {}", offset,
         reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back silently
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;

void RegexSplitter::split(std::string_view text, bool keep_gaps, std::vector<std::string>& out) const {
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  MOE_CHECK(match != nullptr, ErrorCode::kOutOfMemory, "cannot allocate regex match data");
  size_t start = 0, gap = 0;
  uint32_t options = 0;  // the first call validates the UTF-8 of the whole text; later ones skip it
  while (start <= text.size()) {
    const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, options,
                               match, nullptr);
    options = PCRE2_NO_UTF_CHECK;
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(match);
      MOE_CHECK(rc > PCRE2_ERROR_UTF8_ERR1 || rc < PCRE2_ERROR_UTF8_ERR21, ErrorCode::kInvalidArgument,
                "the text is not valid UTF-8");
      fail(ErrorCode::kInvalidArgument, "pre-tokenizer regex failed on the input (PCRE2 error {})", rc);
    }
    const PCRE2_SIZE* v = pcre2_get_ovector_pointer(match);
    const size_t b = v[0], e = v[1];
    if (e == b) {  // empty match: step one character forward
      start = b + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
      continue;
    }
    if (keep_gaps && b > gap) out.emplace_back(text.substr(gap, b - gap));
    out.emplace_back(text.substr(b, e - b));
    gap = start = e;
  }
  if (keep_gaps && gap < text.size()) out.emplace_back(text.substr(gap));
  pcre2_match_data_free(match);
}

}  // namespace moe::tokenizer
