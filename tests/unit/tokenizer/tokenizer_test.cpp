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

// Text without a token maps to the unk token, or is refused naming it: it was dropped.
TEST(Tokenizer, TextWithoutATokenIsUnkOrAnError) {
  const SpecialTokenConfig none;
  const std::string vocab = R"("h": 0, "e": 1, "l": 2, "o": 3, "he": 4)";
  const auto bpe = [&](const std::string& extra_vocab, const std::string& model_fields, const std::string& rest = "") {
    return make_bpe_tokenizer(R"({"model": {"type": "BPE", "vocab": {)" + vocab + extra_vocab + R"(}, "merges": ["h e"])" +
                                  model_fields + "}" + rest + "}",
                              none, "t.json");
  };
  const auto error_of = [](const Tokenizer& tok, const std::string& text) {
    try {
      tok.encode(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("encoded");
  };
  EXPECT_EQ(bpe(R"(, "<unk>": 5)", R"(, "unk_token": "<unk>")")->encode("ahello"), (std::vector<int32_t>{5, 4, 2, 2, 3}));
  EXPECT_EQ(bpe(R"(, "<0x61>": 5)", R"(, "byte_fallback": true)")->encode("ahe"), (std::vector<int32_t>{5, 4}));
  EXPECT_NE(error_of(*bpe("", ""), "ahello").find("the character 'a' (0x61) has no token"), std::string::npos)
      << error_of(*bpe("", ""), "ahello");
  // byte_fallback without that byte's token, and no unk token.
  EXPECT_NE(error_of(*bpe("", R"(, "byte_fallback": true)"), "h\xc3\xa9").find("the character '\xc3\xa9' (0xC3 0xA9)"),
            std::string::npos);
  // Byte-level: the byte is named, not the symbol standing for it.
  const auto byte_level = bpe("", "", R"(, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})");
  EXPECT_NE(error_of(*byte_level, "he\n").find("the byte 0x0A has no token"), std::string::npos) << error_of(*byte_level, "he\n");
}

TEST(Tokenizer, InvalidUtf8IsRejected) {
  const auto tok = load_tokenizer(kData / "gpt2_style");
  EXPECT_THROW(tok->encode("bad \xff\xfe bytes"), Error);
}

}  // namespace
}  // namespace moe::tokenizer
