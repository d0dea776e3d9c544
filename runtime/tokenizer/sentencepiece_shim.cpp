// The only code that links libsentencepiece: see sentencepiece_api.h for why it is a module.
#include <sentencepiece_processor.h>

#include "runtime/tokenizer/sentencepiece_api.h"

namespace {

class Shim final : public moe::tokenizer::SentencePieceApi {
 public:
  std::string load(const std::string& file) override { return message(p_.Load(file)); }
  std::string encode(std::string_view text, std::vector<int>& ids) const override { return message(p_.Encode(text, &ids)); }
  int piece_size() const override { return p_.GetPieceSize(); }
  int piece_to_id(std::string_view piece) const override { return p_.PieceToId(piece); }
  std::string id_to_piece(int id) const override { return p_.IdToPiece(id); }
  bool is_control(int id) const override { return p_.IsControl(id); }
  int bos_id() const override { return p_.bos_id(); }
  int eos_id() const override { return p_.eos_id(); }
  int unk_id() const override { return p_.unk_id(); }

 private:
  static std::string message(const sentencepiece::util::Status& s) { return s.ok() ? std::string() : s.ToString(); }
  sentencepiece::SentencePieceProcessor p_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) moe::tokenizer::SentencePieceApi* moe_sentencepiece_create() {
  return new Shim();
}
