// The tests of `x is name(...)`, as jinja2 3.1 defines them.
#include <fmt/format.h>

#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_strings.h"
#include "runtime/core/error.h"

namespace moe::chat::jinja {

bool apply_test(Evaluator& ev, const std::string& name, CallArgs& args) {
  const Value v = args.positional.at(0);
  const auto other = [&]() -> Value {
    if (args.positional.size() < 2) ev.error(fmt::format("test '{}' needs an argument", name));
    return args.positional[1];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.is_function();
  if (name == "equalto" || name == "eq" || name == "==") return equals(v, other());
  if (name == "ne" || name == "!=") return !equals(v, other());
  if (name == "in") return contains(ev, other(), v);
  if (name == "sameas") {
    const Value o = other();
    if (v.is_none() || o.is_none() || v.is_bool() || o.is_bool()) return v.kind() == o.kind() && equals(v, o);
    return v.kind() == o.kind() && (v.is_mapping() || v.is_function()) && v.identity() == o.identity();
  }
  if (name == "lt" || name == "lessthan" || name == "<" || name == "gt" || name == "greaterthan" || name == ">" ||
      name == "le" || name == "<=" || name == "ge" || name == ">=") {
    const Value o = other();
    try {
      if (name == "lt" || name == "lessthan" || name == "<") return less(v, o);
      if (name == "gt" || name == "greaterthan" || name == ">") return less(o, v);
      if (name == "le" || name == "<=") return less(v, o) || equals(v, o);
      return less(o, v) || equals(v, o);
    } catch (const Error& e) {
      ev.error(e.what());
    }
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_number() || v.is_float()) ev.error(fmt::format("test '{}' needs an integer", name));
    if (name == "divisibleby") {
      const Value o = other();
      if (!o.is_number() || o.is_float() || o.as_int() == 0) ev.error("divisibleby needs a non-zero integer");
      return v.as_int() % o.as_int() == 0;
    }
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "lower") return py_lower(to_str(v)) == to_str(v);
  if (name == "upper") return py_upper(to_str(v)) == to_str(v);
  ev.error(fmt::format("no test named '{}'", name));
}

}  // namespace moe::chat::jinja
