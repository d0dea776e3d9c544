#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"
#include "runtime/tokenizer/bpe_tokenizer.h"
#include "runtime/tokenizer/sentencepiece_tokenizer.h"

namespace moe::tokenizer {
namespace {

// bos_token / eos_token are strings or {"content": ...} objects.
std::optional<std::string> token_text(const nlohmann::json& doc, const char* key) {
  if (!doc.contains(key) || doc.at(key).is_null()) return std::nullopt;
  const auto& v = doc.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

SpecialTokenConfig read_special_tokens(const std::filesystem::path& dir) {
  SpecialTokenConfig special;
  const auto path = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return special;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorrupt, "{} is not valid JSON: {}", path.string(), e.what());
  }
  MOE_CHECK(doc.is_object(), ErrorCode::kCorrupt, "{} must hold a JSON object", path.string());
  special.bos_token = token_text(doc, "bos_token");
  special.eos_token = token_text(doc, "eos_token");
  if (doc.contains("add_bos_token") && doc.at("add_bos_token").is_boolean()) special.add_bos_token = doc.at("add_bos_token").get<bool>();
  return special;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  const SpecialTokenConfig special = read_special_tokens(dir);
  const auto json_path = dir / "tokenizer.json", sp_path = dir / "tokenizer.model";
  if (std::filesystem::exists(json_path)) {
    try {
      return make_bpe_tokenizer(read_file(json_path), special, json_path.string());
    } catch (const Error& e) {
      // A SentencePiece-style tokenizer.json (Metaspace) comes with its tokenizer.model.
      if (e.code() != ErrorCode::kUnsupported || !std::filesystem::exists(sp_path)) throw;
    }
  }
  MOE_CHECK(std::filesystem::exists(sp_path), ErrorCode::kNotFound, "{} has neither tokenizer.json nor tokenizer.model",
            dir.string());
  return make_sentencepiece_tokenizer(sp_path, special);
}

}  // namespace moe::tokenizer
