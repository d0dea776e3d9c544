#pragma once
// Typed access to config.json fields, shared by the model config parser's files (not a public
// header). Absent or null means "use the default"; a wrong type or an out-of-range value is an
// error naming the field and the file.
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/loading/model_config.h"

namespace moe::loading::detail {

using nlohmann::json;

class Fields {
 public:
  // read: when given, collects the name of every field asked about (the strict-config test).
  Fields(const json& doc, std::string_view source, std::set<std::string>* read = nullptr)
      : doc_(doc), source_(source), read_(read) {}

  bool has(const char* key) const {
    if (read_) read_->insert(key);
    return doc_.contains(key) && !doc_.at(key).is_null();
  }
  // Written as null (which some fields read differently from absent, e.g. q_lora_rank).
  bool is_null(const char* key) const {
    if (read_) read_->insert(key);
    return doc_.contains(key) && doc_.at(key).is_null();
  }

  int get_int(const char* key, int fallback, int min_value = 0, int max_value = 1 << 30) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    MOE_CHECK(v.is_number_integer(), ErrorCode::kCorrupt, "{}: field '{}' must be an integer", source_, key);
    const int64_t x = v.get<int64_t>();
    MOE_CHECK(x >= min_value && x <= max_value, ErrorCode::kCorrupt, "{}: field '{}' = {} is out of range [{}, {}]",
              source_, key, x, min_value, max_value);
    return static_cast<int>(x);
  }

  double get_double(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    MOE_CHECK(v.is_number(), ErrorCode::kCorrupt, "{}: field '{}' must be a number", source_, key);
    return v.get<double>();  // finite: the parser refuses NaN, inf and 1e400
  }

  // A scale that a zero or negative value turns into NaN logits (rope_theta, a norm's epsilon).
  double get_positive(const char* key, double fallback) const {
    const double x = get_double(key, fallback);
    MOE_CHECK(x > 0, ErrorCode::kCorrupt, "{}: field '{}' = {} must be positive", source_, key, x);
    return x;
  }

  bool get_bool(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    MOE_CHECK(v.is_boolean(), ErrorCode::kCorrupt, "{}: field '{}' must be true or false", source_, key);
    return v.get<bool>();
  }

  std::string get_string(const char* key, std::string fallback) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    MOE_CHECK(v.is_string(), ErrorCode::kCorrupt, "{}: field '{}' must be a string", source_, key);
    return v.get<std::string>();
  }

  std::vector<int32_t> get_int_list(const char* key) const {
    std::vector<int32_t> out;
    if (!has(key)) return out;
    const json& v = doc_.at(key);
    if (v.is_number_integer()) {
      out.push_back(static_cast<int32_t>(get_int(key, 0, -1)));
      return out;
    }
    MOE_CHECK(v.is_array(), ErrorCode::kCorrupt, "{}: field '{}' must be an integer or a list of integers", source_, key);
    for (const json& item : v) {
      MOE_CHECK(item.is_number_integer() && item.get<int64_t>() >= 0 && item.get<int64_t>() < (1 << 30),
                ErrorCode::kCorrupt, "{}: field '{}' must hold non-negative integers", source_, key);
      out.push_back(static_cast<int32_t>(item.get<int64_t>()));
    }
    return out;
  }

  const json& object(const char* key) const {
    if (read_) read_->insert(key);
    const json& v = doc_.at(key);
    MOE_CHECK(v.is_object(), ErrorCode::kCorrupt, "{}: field '{}' must be an object", source_, key);
    return v;
  }

  const json& raw(const char* key) const {
    if (read_) read_->insert(key);
    return doc_.at(key);
  }
  std::string_view source() const { return source_; }

 private:
  const json& doc_;
  std::string_view source_;
  std::set<std::string>* read_;
};

// The families parsed in model_config_families.cpp, once the common fields are known: DeepSeek-V2
// and V3 (and Kimi-K2), GLM-4.5, gpt-oss; and the FP8 quantization_config (Fp8Config) of the
// families with FP8 releases (DeepSeek-V3, Kimi-K2, GLM-4.5, Qwen3), other methods refused.
void parse_fp8_quantization(const Fields& f, ModelConfig* c);
void parse_deepseek_v2(const Fields& f, ModelConfig* c);
void parse_glm4_moe(const Fields& f, const json& doc, ModelConfig* c);
void parse_gpt_oss(const Fields& f, ModelConfig* c);

}  // namespace moe::loading::detail
