#pragma once
// Text <-> token ids, as Hugging Face `tokenizers` (tokenizer.json, byte-level BPE) and
// SentencePiece (tokenizer.model) compute them.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special_tokens: the BOS (or template) the model expects at the start.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const = 0;
  // The raw bytes the ids stand for (may end inside a UTF-8 character).
  virtual std::string decode_bytes(std::span<const int32_t> ids, bool skip_special_tokens = false) const = 0;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const {
    return decode_bytes(ids, skip_special_tokens);
  }
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;
  virtual std::optional<int32_t> bos_token_id() const = 0;
  virtual std::optional<int32_t> eos_token_id() const = 0;
};

// Turns ids into text as they are generated, never splitting a UTF-8 character.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);  // the text completed by this id
  std::string flush();           // whatever is left (invalid bytes as U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
};

// tokenizer.json (preferred) or tokenizer.model in `dir`, with tokenizer_config.json's
// bos/eos and add_bos_token. Throws moe::Error naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);

}  // namespace moe::tokenizer
