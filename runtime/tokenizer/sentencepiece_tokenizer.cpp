#include "runtime/tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

#include "runtime/core/error.h"
#include "runtime/tokenizer/sentencepiece_api.h"

namespace moe::tokenizer {
namespace {

// Where the module is: $MOE_SENTENCEPIECE_SHIM, beside the executable, or where the build put it.
std::vector<std::string> shim_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("MOE_SENTENCEPIECE_SHIM"); env && *env) out.emplace_back(env);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((exe.parent_path() / "libmoe_sentencepiece_shim.so").string());
  out.emplace_back(MOE_SENTENCEPIECE_SHIM_PATH);
  return out;
}

SentencePieceFactory load_factory() {
  static SentencePieceFactory factory = [] {
    std::string tried;
    for (const std::string& path : shim_candidates()) {
      if (!std::filesystem::exists(path)) continue;
      void* module = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!module) {
        tried += std::string(" ") + ::dlerror();
        continue;
      }
      if (void* symbol = ::dlsym(module, kSentencePieceFactorySymbol)) return reinterpret_cast<SentencePieceFactory>(symbol);
    }
    fail(ErrorCode::kUnsupported, "SentencePiece support is not available (libmoe_sentencepiece_shim.so not found{})", tried);
    return SentencePieceFactory{};
  }();
  return factory;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& file, const SpecialTokenConfig& special) : sp_(load_factory()()) {
    const std::string error = sp_->load(file.string());
    MOE_CHECK(error.empty(), ErrorCode::kCorrupt, "{} is not a SentencePiece model: {}", file.string(), error);
    if (sp_->bos_id() >= 0) bos_ = sp_->bos_id();
    if (sp_->eos_id() >= 0) eos_ = sp_->eos_id();
    if (special.bos_token) bos_ = token_id(*special.bos_token);
    if (special.eos_token) eos_ = token_id(*special.eos_token);
    add_bos_ = special.add_bos_token.value_or(true) && bos_.has_value();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int> ids;
    const std::string error = sp_->encode(text, ids);
    MOE_CHECK(error.empty(), ErrorCode::kInvalidArgument, "cannot tokenise the text: {}", error);
    std::vector<int32_t> out;
    if (add_special_tokens && add_bos_) out.push_back(*bos_);
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  // Raw bytes, as the Tokenizer contract asks: the library's decode would turn an unfinished
  // byte-fallback sequence into U+FFFD, which a stream cannot take back. So pieces are joined
  // here, as SentencePiece's decoder joins them: "\u2581" is a space, "<0xHH>" a byte, control
  // symbols vanish, the unknown piece reads " \u2047 ", and the first piece loses the space its
  // dummy prefix added.
  std::string decode_bytes(std::span<const int32_t> ids, bool /*skip_special_tokens*/) const override {
    static constexpr std::string_view kSpace = "\xE2\x96\x81";
    std::string out;
    bool at_start = true;
    for (int32_t id : ids) {
      if (id < 0 || id >= sp_->piece_size() || sp_->is_control(id)) continue;
      if (id == sp_->unk_id()) {
        out += " \xE2\x81\x87 ";
        at_start = false;
        continue;
      }
      const std::string piece = sp_->id_to_piece(id);
      if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>' && std::isxdigit(uint8_t(piece[3])) &&
          std::isxdigit(uint8_t(piece[4]))) {
        out.push_back(char(std::stoi(piece.substr(3, 2), nullptr, 16)));
        at_start = false;
        continue;
      }
      std::string text;
      for (size_t i = 0; i < piece.size();) {
        if (piece.compare(i, kSpace.size(), kSpace) == 0) {
          text.push_back(' ');
          i += kSpace.size();
        } else {
          text.push_back(piece[i++]);
        }
      }
      if (at_start && !text.empty() && text.front() == ' ') text.erase(0, 1);
      at_start = at_start && text.empty();
      out += text;
    }
    return out;
  }

  int32_t vocab_size() const override { return sp_->piece_size(); }
  std::optional<int32_t> token_id(std::string_view token) const override {
    const int id = sp_->piece_to_id(token);
    if (id == sp_->unk_id() && sp_->id_to_piece(id) != token) return std::nullopt;
    return id;
  }
  std::optional<int32_t> bos_token_id() const override { return bos_; }
  std::optional<int32_t> eos_token_id() const override { return eos_; }

 private:
  std::unique_ptr<SentencePieceApi> sp_;
  std::optional<int32_t> bos_, eos_;
  bool add_bos_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::filesystem::path& file, const SpecialTokenConfig& special) {
  return std::make_unique<SentencePieceTokenizer>(file, special);
}

}  // namespace moe::tokenizer
