#include "runtime/tokenizer/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "runtime/core/error.h"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/regex_splitter.h"

namespace moe::tokenizer {
namespace {

using nlohmann::json;

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false, rstrip = false;
};

// One pre-tokenisation step.
struct PreStep {
  std::shared_ptr<RegexSplitter> regex;
  bool keep_gaps = true;          // Split: Isolated keeps the text between matches
  bool byte_level = false;        // ByteLevel: bytes become symbols after splitting
  bool add_prefix_space = false;  // ByteLevel
};

size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
}

// How an error names text no token covers: the character where it prints, its bytes always.
std::string describe_bytes(std::string_view bytes) {
  std::string hex;
  for (unsigned char c : bytes) hex += fmt::format("{}0x{:02X}", hex.empty() ? "" : " ", c);
  const auto lead = static_cast<unsigned char>(bytes.empty() ? 0 : bytes[0]);
  const bool prints = bytes.size() == 1 ? lead > 0x20 && lead < 0x7F
                                        : lead >= 0xC2 && utf8_length(lead) == bytes.size() &&
                                              std::all_of(bytes.begin() + 1, bytes.end(),
                                                          [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; });
  return prints ? fmt::format("the character '{}' ({})", bytes, hex) : fmt::format("the byte{} {}", bytes.size() > 1 ? "s" : "", hex);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(const json& doc, const SpecialTokenConfig& special, std::string source) : source_(std::move(source)) {
    load_model(doc.at("model"));
    load_added_tokens(doc);
    load_normalizer(doc.value("normalizer", json()));
    load_pre_tokenizer(doc.value("pre_tokenizer", json()));
    load_post_processor(doc.value("post_processor", json()), special);
    if (special.eos_token) eos_ = token_id(*special.eos_token);
    if (special.bos_token) bos_ = token_id(*special.bos_token);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int32_t> ids;
    if (add_special_tokens) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
    size_t pos = 0;
    std::string pending;  // text before the next added token
    while (pos < text.size()) {
      const AddedToken* hit = nullptr;
      for (const AddedToken& t : added_)  // longest first
        if (text.compare(pos, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      if (!hit) {
        pending += text[pos++];
        continue;
      }
      if (hit->lstrip)
        while (!pending.empty() && is_space(pending.back())) pending.pop_back();
      encode_ordinary(pending, ids);
      pending.clear();
      ids.push_back(hit->id);
      pos += hit->content.size();
      if (hit->rstrip)
        while (pos < text.size() && is_space(text[pos])) ++pos;
    }
    encode_ordinary(pending, ids);
    return ids;
  }

  std::string decode_bytes(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || size_t(id) >= id_to_token_.size()) continue;
      const auto added = added_by_id_.find(id);
      if (added != added_by_id_.end()) {
        if (!(skip_special_tokens && added->second)) out += id_to_token_[size_t(id)];
        continue;
      }
      const std::string& token = id_to_token_[size_t(id)];
      if (byte_level_) {
        symbols_to_bytes(token, out);
      } else if (byte_fallback_ && token.size() == 6 && token.starts_with("<0x") && token.back() == '>') {
        out += static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16));
      } else {
        out += token;
      }
    }
    return out;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  std::optional<int32_t> token_id(std::string_view token) const override {
    const auto it = vocab_.find(std::string(token));
    return it == vocab_.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }
  std::optional<int32_t> bos_token_id() const override { return bos_; }
  std::optional<int32_t> eos_token_id() const override { return eos_; }

 private:
  void load_model(const json& model) {
    const std::string type = model.value("type", "BPE");
    MOE_CHECK(type == "BPE", ErrorCode::kUnsupported, "{}: tokenizer model '{}' is not supported (BPE is)", source_, type);
    MOE_CHECK(model.contains("vocab") && model.at("vocab").is_object(), ErrorCode::kCorrupt, "{}: model.vocab must be an object",
              source_);
    for (const auto& [token, id] : model.at("vocab").items()) {
      MOE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 24), ErrorCode::kCorrupt,
                "{}: vocabulary id of '{}' is not a valid id", source_, token);
      set_token(token, static_cast<int32_t>(id.get<int64_t>()));
    }
    int32_t rank = 0;
    for (const json& merge : model.value("merges", json::array())) {
      std::string a, b;
      if (merge.is_string()) {
        const std::string s = merge.get<std::string>();
        const size_t space = s.find(' ', 1);
        MOE_CHECK(space != std::string::npos, ErrorCode::kCorrupt, "{}: merge '{}' is not two symbols", source_, s);
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else {
        MOE_CHECK(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(), ErrorCode::kCorrupt,
                  "{}: a merge must be \"a b\" or [\"a\", \"b\"]", source_);
        a = merge[0].get<std::string>();
        b = merge[1].get<std::string>();
      }
      const auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
      MOE_CHECK(ia != vocab_.end() && ib != vocab_.end() && im != vocab_.end(), ErrorCode::kCorrupt,
                "{}: merge '{} {}' uses symbols outside the vocabulary", source_, a, b);
      merges_.emplace(pair_key(ia->second, ib->second), Merge{rank++, im->second});
    }
    ignore_merges_ = model.value("ignore_merges", false);
    byte_fallback_ = model.value("byte_fallback", false);
    if (model.contains("unk_token") && model.at("unk_token").is_string()) unk_ = token_id(model.at("unk_token").get<std::string>());
  }

  void load_added_tokens(const json& doc) {
    for (const json& t : doc.value("added_tokens", json::array())) {
      AddedToken a;
      a.content = t.at("content").get<std::string>();
      a.id = t.at("id").get<int32_t>();
      a.special = t.value("special", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      MOE_CHECK(!a.content.empty() && a.id >= 0 && a.id < (1 << 24), ErrorCode::kCorrupt, "{}: added token with id {} is invalid",
                source_, a.id);
      set_token(a.content, a.id);
      added_by_id_[a.id] = a.special;
      added_.push_back(a);
    }
    std::stable_sort(added_.begin(), added_.end(),
                     [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
  }

  void load_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    // NFC leaves text that is already composed unchanged, which is what engines receive in
    // practice; full composition of decomposed input is not implemented.
    if (type == "NFC") return;
    if (type == "Sequence" && n.value("normalizers", json::array()).empty()) return;
    fail(ErrorCode::kUnsupported, "{}: normalizer '{}' is not supported", source_, type);
  }

  void load_pre_tokenizer(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const json& step : p.value("pretokenizers", json::array())) load_pre_tokenizer(step);
      return;
    }
    PreStep step;
    if (type == "ByteLevel") {
      step.byte_level = true;
      step.add_prefix_space = p.value("add_prefix_space", false);
      if (p.value("use_regex", true)) {
        step.regex = std::make_shared<RegexSplitter>(kGpt2Pattern);
        step.keep_gaps = false;
      }
      byte_level_ = true;
    } else if (type == "Split") {
      const json& pattern = p.at("pattern");
      MOE_CHECK(pattern.contains("Regex"), ErrorCode::kUnsupported, "{}: only Split pre-tokenizers with a Regex are supported",
                source_);
      step.regex = std::make_shared<RegexSplitter>(pattern.at("Regex").get<std::string>());
      const std::string behavior = p.value("behavior", "Isolated");
      MOE_CHECK(behavior == "Isolated" || behavior == "Removed", ErrorCode::kUnsupported,
                "{}: Split behavior '{}' is not supported", source_, behavior);
      MOE_CHECK(!p.value("invert", false), ErrorCode::kUnsupported, "{}: inverted Split is not supported", source_);
      step.keep_gaps = behavior == "Isolated";
    } else {
      fail(ErrorCode::kUnsupported, "{}: pre-tokenizer '{}' is not supported", source_, type);
    }
    pre_.push_back(std::move(step));
  }

  void load_post_processor(const json& p, const SpecialTokenConfig& special) {
    const auto add_by_name = [&](const std::string& name) {
      const auto id = token_id(name);
      MOE_CHECK(id.has_value(), ErrorCode::kCorrupt, "{}: special token '{}' is not in the vocabulary", source_, name);
      prefix_.push_back(*id);
    };
    if (!p.is_null() && p.value("type", "") == "TemplateProcessing") {
      for (const json& piece : p.value("single", json::array())) {
        if (piece.contains("Sequence")) break;  // only tokens before the text are a prefix
        if (piece.contains("SpecialToken")) add_by_name(piece.at("SpecialToken").at("id").get<std::string>());
      }
    } else if (special.add_bos_token.value_or(false) && special.bos_token) {
      add_by_name(*special.bos_token);
    }
  }

  void set_token(const std::string& token, int32_t id) {
    vocab_[token] = id;
    if (id_to_token_.size() <= size_t(id)) id_to_token_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = token;
  }

  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  void encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<std::string> pieces{std::string(text)}, next;
    bool first_step = true;
    for (const PreStep& step : pre_) {
      if (step.add_prefix_space && first_step && !pieces.empty() && !pieces.front().starts_with(' '))
        pieces.front() = " " + pieces.front();
      if (step.regex) {
        next.clear();
        for (const std::string& piece : pieces) step.regex->split(piece, step.keep_gaps, next);
        pieces.swap(next);
      }
      first_step = false;
    }
    for (const std::string& piece : pieces) encode_word(piece, ids);
  }

  // BPE on one pre-tokenised word: lowest-ranked adjacent pair first, leftmost on ties.
  void encode_word(const std::string& word, std::vector<int32_t>& ids) const {
    std::string symbols;
    if (byte_level_) {
      for (unsigned char c : word) symbols += byte_to_symbol()[c];
    } else {
      symbols = word;
    }
    {
      std::lock_guard lock(cache_mutex_);
      const auto it = cache_.find(symbols);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> parts;
    if (const auto whole = vocab_.find(symbols); ignore_merges_ && whole != vocab_.end()) {
      parts.push_back(whole->second);
    } else {
      for (size_t i = 0; i < symbols.size();) {
        const size_t len = std::min(utf8_length(static_cast<unsigned char>(symbols[i])), symbols.size() - i);
        const auto it = vocab_.find(symbols.substr(i, len));
        if (it != vocab_.end()) {
          parts.push_back(it->second);
        } else {
          // As Hugging Face's BPE: the bytes' tokens when byte_fallback has them all, else the
          // unk token. Without one the text cannot be encoded (dropping it changed the prompt).
          std::vector<int32_t> bytes;
          for (size_t k = 0; byte_fallback_ && k < len; ++k) {
            const auto b = vocab_.find(fmt::format("<0x{:02X}>", static_cast<unsigned char>(symbols[i + k])));
            if (b != vocab_.end()) bytes.push_back(b->second);
          }
          if (bytes.size() == len) {
            parts.insert(parts.end(), bytes.begin(), bytes.end());
          } else {
            if (!unk_) {
              std::string raw;
              if (byte_level_) symbols_to_bytes(symbols.substr(i, len), raw);
              else raw = symbols.substr(i, len);
              fail(ErrorCode::kInvalidArgument, "{}: {} has no token and the vocabulary no unk token to stand for it",
                   source_, describe_bytes(raw));
            }
            parts.push_back(*unk_);
          }
        }
        i += len;
      }
      for (;;) {
        int32_t best_rank = std::numeric_limits<int32_t>::max();
        size_t best = 0;
        int32_t merged = 0;
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
          const auto m = merges_.find(pair_key(parts[i], parts[i + 1]));
          if (m != merges_.end() && m->second.rank < best_rank) {
            best_rank = m->second.rank;
            best = i;
            merged = m->second.id;
          }
        }
        if (best_rank == std::numeric_limits<int32_t>::max()) break;
        parts[best] = merged;
        parts.erase(parts.begin() + int64_t(best) + 1);
      }
    }
    ids.insert(ids.end(), parts.begin(), parts.end());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() > 100000) cache_.clear();
    cache_.emplace(std::move(symbols), std::move(parts));
  }

  struct Merge {
    int32_t rank;
    int32_t id;
  };

  std::string source_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, bool> added_by_id_;  // id -> special
  std::vector<PreStep> pre_;
  std::vector<int32_t> prefix_;
  bool byte_level_ = false, ignore_merges_ = false, byte_fallback_ = false;
  std::optional<int32_t> unk_, bos_, eos_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(std::string_view json_text, const SpecialTokenConfig& special,
                                              std::string_view source) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(ErrorCode::kCorrupt, "{} is not valid JSON: {}", source, e.what());
  }
  MOE_CHECK(doc.is_object() && doc.contains("model"), ErrorCode::kCorrupt, "{} has no tokenizer model", source);
  try {
    return std::make_unique<BpeTokenizer>(doc, special, std::string(source));
  } catch (const json::exception& e) {
    fail(ErrorCode::kCorrupt, "{} is malformed: {}", source, e.what());
  }
}

}  // namespace moe::tokenizer
