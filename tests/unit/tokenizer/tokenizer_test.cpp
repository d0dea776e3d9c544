// Encode and decode against Hugging Face `tokenizers` and `sentencepiece` (expected ids
// written by make_tokenizer_fixtures.py).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "runtime/core/error.h"
#include "runtime/tokenizer/bpe_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace moe::tokenizer {
namespace {

const std::filesystem::path kData = std::filesystem::path(MOE_SOURCE_DIR) / "tests/unit/tokenizer/data";

nlohmann::json expected() {
  std::ifstream in(kData / "expected.json");
  return nlohmann::json::parse(in);
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

class Reference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (kAddressSanitizer && GetParam() == "sentencepiece")
      GTEST_SKIP() << "AddressSanitizer cannot load the SentencePiece module, which needs RTLD_DEEPBIND "
                      "(google/sanitizers#611)";
  }
};

TEST_P(Reference, EncodeAndDecodeMatch) {
  const auto tok = load_tokenizer(kData / GetParam());
  const bool sentencepiece = GetParam() == "sentencepiece";
  const auto cases = expected();  // the range below must not outlive it
  for (const auto& c : cases.at(GetParam())) {
    const std::string text = c.at("text").get<std::string>();
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(text), ids) << "text: " << text;
    const std::span<const int32_t> body(ids.data() + (sentencepiece ? 1 : 0), ids.size() - (sentencepiece ? 1 : 0));
    EXPECT_EQ(tok->decode(body), c.at("decoded").get<std::string>()) << "text: " << text;
  }
}

TEST_P(Reference, StreamingDecodeEqualsWholeDecode) {
  const auto tok = load_tokenizer(kData / GetParam());
  const auto cases = expected();
  for (const auto& c : cases.at(GetParam())) {
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    StreamDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = stream.push(id);
      // Never a partial UTF-8 character at the end of a piece.
      if (!piece.empty()) {
        EXPECT_NE(static_cast<unsigned char>(piece.back()) & 0xC0, 0xC0);
      }
      streamed += piece;
    }
    streamed += stream.flush();
    EXPECT_EQ(streamed, tok->decode(ids));
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Reference, ::testing::Values("gpt2_style", "qwen2_style", "sentencepiece"));

TEST(Tokenizer, SpecialTokensAndIds) {
  const auto tok = load_tokenizer(kData / "gpt2_style");
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->eos_token_id(), 0);
  EXPECT_EQ(tok->vocab_size(), 2048);
  EXPECT_EQ(tok->decode(std::vector<int32_t>{0, 67}, /*skip_special_tokens=*/true), tok->decode(std::vector<int32_t>{67}));
}

TEST(Tokenizer, MalformedFilesAreClearErrors) {
  const SpecialTokenConfig none;
  EXPECT_THROW(make_bpe_tokenizer("{not json", none, "t.json"), Error);
  EXPECT_THROW(make_bpe_tokenizer("{}", none, "t.json"), Error);
  EXPECT_THROW(make_bpe_tokenizer(R"({"model": {"type": "WordPiece", "vocab": {}}})", none, "t.json"), Error);
  EXPECT_THROW(make_bpe_tokenizer(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", none, "t.json"), Error);
  EXPECT_THROW(make_bpe_tokenizer(R"({"model": {"type": "BPE", "vocab": {"a": -4}}})", none, "t.json"), Error);
  EXPECT_THROW(make_bpe_tokenizer(
                   R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}}})",
                   none, "t.json"),
               Error);
  EXPECT_THROW(load_tokenizer(kData / "missing-folder"), Error);
}

TEST(Tokenizer, InvalidUtf8IsRejected) {
  const auto tok = load_tokenizer(kData / "gpt2_style");
  EXPECT_THROW(tok->encode("bad \xff\xfe bytes"), Error);
}

}  // namespace
}  // namespace moe::tokenizer
