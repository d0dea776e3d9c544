#pragma once
// The narrow interface through which the engine uses libsentencepiece.
//
// Why: Debian's libsentencepiece.so carries its own copy of protobuf-lite and exports its
// symbols; linked into the same process as libprotobuf (our store and trace formats) the two
// interpose each other and the process crashes while loading. So libsentencepiece is only ever
// loaded by sentencepiece_shim.cpp, a small module opened with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND), and reached through this vtable alone (no symbol crosses the boundary).
#include <string>
#include <string_view>
#include <vector>

namespace moe::tokenizer {

class SentencePieceApi {
 public:
  virtual ~SentencePieceApi() = default;
  // Each returns an empty string on success, else the library's message.
  virtual std::string load(const std::string& model_file) = 0;
  virtual std::string encode(std::string_view text, std::vector<int>& ids) const = 0;
  virtual int piece_size() const = 0;
  virtual int piece_to_id(std::string_view piece) const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual bool is_control(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int unk_id() const = 0;
};

// The module's one exported symbol.
extern "C" using SentencePieceFactory = SentencePieceApi* (*)();
inline constexpr const char* kSentencePieceFactorySymbol = "moe_sentencepiece_create";

}  // namespace moe::tokenizer
