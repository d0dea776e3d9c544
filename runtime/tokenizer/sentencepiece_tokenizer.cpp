#include "runtime/tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "runtime/core/error.h"

namespace moe::tokenizer {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& file, const SpecialTokenConfig& special) {
    const auto status = processor_.Load(file.string());
    MOE_CHECK(status.ok(), ErrorCode::kCorrupt, "{} is not a SentencePiece model: {}", file.string(), status.ToString());
    if (processor_.bos_id() >= 0) bos_ = processor_.bos_id();
    if (processor_.eos_id() >= 0) eos_ = processor_.eos_id();
    if (special.bos_token) bos_ = token_id(*special.bos_token);
    if (special.eos_token) eos_ = token_id(*special.eos_token);
    add_bos_ = special.add_bos_token.value_or(true) && bos_.has_value();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    MOE_CHECK(status.ok(), ErrorCode::kInvalidArgument, "cannot tokenise the text: {}", status.ToString());
    std::vector<int32_t> out;
    if (add_special_tokens && add_bos_) out.push_back(*bos_);
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  std::string decode_bytes(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::vector<int> kept;
    for (int32_t id : ids) {
      if (id < 0 || id >= processor_.GetPieceSize()) continue;
      if (skip_special_tokens && processor_.IsControl(id)) continue;
      kept.push_back(id);
    }
    std::string text;
    const auto status = processor_.Decode(kept, &text);
    MOE_CHECK(status.ok(), ErrorCode::kInvalidArgument, "cannot decode ids: {}", status.ToString());
    return text;
  }

  int32_t vocab_size() const override { return processor_.GetPieceSize(); }
  std::optional<int32_t> token_id(std::string_view token) const override {
    const int id = processor_.PieceToId(token);
    if (id == processor_.unk_id() && processor_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  std::optional<int32_t> bos_token_id() const override { return bos_; }
  std::optional<int32_t> eos_token_id() const override { return eos_; }

 private:
  sentencepiece::SentencePieceProcessor processor_;
  std::optional<int32_t> bos_, eos_;
  bool add_bos_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::filesystem::path& file, const SpecialTokenConfig& special) {
  return std::make_unique<SentencePieceTokenizer>(file, special);
}

}  // namespace moe::tokenizer
