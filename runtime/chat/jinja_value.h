#pragma once
// The values a Jinja template computes with, modelled on the Python objects jinja2 sees when
// transformers renders a chat template: None, bool, int, float, str, list/tuple, dict, callables,
// namespace() objects and jinja2's default Undefined.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moe::chat::jinja {

class Value;
class Evaluator;
class Dict;
struct CallArgs;

using Function = std::function<Value(CallArgs& args, Evaluator& eval)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };
  using List = std::vector<Value>;

  Value() = default;  // Undefined
  static Value undefined(std::string name = {});
  static Value none();
  Value(bool b);
  Value(int64_t i);
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(double d);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  static Value list(List items, bool tuple = false);
  static Value dict(std::shared_ptr<Dict> d);
  static Value ns(std::shared_ptr<Dict> d);  // a mutable namespace() object
  static Value function(std::string name, Function f);
  static Value from_json(const nlohmann::json& j);
  static Value from_json(const nlohmann::ordered_json& j);  // keeps the keys' order, as Python does

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double as_float() const { return kind_ == Kind::kFloat ? d_ : static_cast<double>(as_int()); }
  const std::string& as_string() const { return *s_; }
  const List& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }
  Dict& mutable_dict() const { return *dict_; }  // namespaces only
  const Function& as_function() const { return *fn_; }
  const std::string& name() const { return *s_; }  // an Undefined's or function's name
  const void* identity() const { return dict_ ? static_cast<const void*>(dict_.get()) : fn_.get(); }

  bool truthy() const;
  std::string type_name() const;  // Python's type name, for error messages

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false, tuple_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

// Defined after Value: their vectors of pairs need Value complete (clang's libstdc++ checks).
// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// An insertion-ordered str -> Value map (Python dicts keep insertion order).
class Dict {
 public:
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
  std::unordered_map<std::string, size_t> index_;
};

// str(value) as Python prints it ({{ value }}); Undefined prints as "".
std::string to_str(const Value& v);
// repr(value): how a value prints inside a list or dict.
std::string to_repr(const Value& v);
// Python's float repr: shortest round-trip digits, "1.0", "1e+16", "inf".
std::string float_repr(double d);
// Python ==, and the ordering of <; throws moe::Error where Python raises TypeError.
bool equals(const Value& a, const Value& b);
bool less(const Value& a, const Value& b);
// json.dumps(value, ensure_ascii=False, indent=indent (<0: none), separators as json's defaults).
std::string to_json(const Value& v, int indent);

// Number of Unicode code points, and the code points themselves, of UTF-8 text (invalid bytes
// count as one each, as they decode to U+FFFD-like surrogates in Python's surrogateescape view).
std::vector<std::string> utf8_chars(std::string_view s);

}  // namespace moe::chat::jinja
