// Attribute and item access, the str/dict/list methods templates call, and the globals
// (raise_exception, namespace, range, dict, strftime_now).
#include <fmt/format.h>

#include <algorithm>

#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_strings.h"
#include "runtime/core/error.h"

namespace moe::chat::jinja {

std::optional<Value> arg(const CallArgs& args, size_t index, const char* name) {
  if (index < args.positional.size()) return args.positional[index];
  for (const auto& [k, v] : args.keyword)
    if (k == name) return v;
  return std::nullopt;
}

int64_t int_arg(Evaluator& ev, const CallArgs& args, size_t index, const char* name, int64_t fallback) {
  const auto v = arg(args, index, name);
  if (!v || v->is_none()) return fallback;
  if (!v->is_number() || v->is_float()) ev.error(fmt::format("'{}' must be an integer", name));
  return v->as_int();
}

std::optional<std::string> str_arg(Evaluator& ev, const CallArgs& args, size_t index, const char* name) {
  const auto v = arg(args, index, name);
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) ev.error(fmt::format("'{}' must be a string, not '{}'", name, v->type_name()));
  return v->as_string();
}

void check_args(Evaluator& ev, const CallArgs& args, const char* what, size_t max_positional,
                std::initializer_list<const char*> keywords) {
  if (args.positional.size() > max_positional)
    ev.error(fmt::format("{} takes at most {} argument(s), {} given", what, max_positional, args.positional.size()));
  for (const auto& [k, v] : args.keyword) {
    bool known = false;
    for (const char* kw : keywords) known = known || k == kw;
    if (!known) ev.error(fmt::format("{} got an unexpected keyword argument '{}'", what, k));
  }
}

namespace {

Value str_list(const std::vector<std::string>& parts) {
  Value::List items;
  items.reserve(parts.size());
  for (const auto& p : parts) items.emplace_back(p);
  return Value::list(std::move(items));
}

// startswith/endswith take a string or a tuple of strings.
bool affix_match(Evaluator& ev, const std::string& s, const Value& affix, bool prefix) {
  const auto one = [&](const Value& a) {
    if (!a.is_string()) ev.error("startswith/endswith take a string or a tuple of strings");
    const std::string& x = a.as_string();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_list()) {
    for (const auto& a : affix.as_list())
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

Value string_method(const Value& self, const std::string& name) {
  static const char* const kNames[] = {"strip",   "lstrip",  "rstrip",     "split",   "rsplit",  "startswith",
                                       "endswith", "replace", "upper",      "lower",   "title",   "capitalize",
                                       "find",    "rfind",   "count",      "join",    "splitlines", "isdigit",
                                       "isalpha", "isalnum", "isspace",    "islower", "isupper", "index"};
  if (std::find_if(std::begin(kNames), std::end(kNames), [&](const char* n) { return name == n; }) == std::end(kNames))
    return Value::undefined(name);
  return Value::function(name, [self, name](CallArgs& args, Evaluator& ev) -> Value {
    const std::string& s = self.as_string();
    const std::string what = "str." + name + "()";
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      check_args(ev, args, what.c_str(), 1, {"chars"});
      return Value(py_strip(s, str_arg(ev, args, 0, "chars"), name != "rstrip", name != "lstrip"));
    }
    if (name == "split" || name == "rsplit") {
      check_args(ev, args, what.c_str(), 2, {"sep", "maxsplit"});
      const auto sep = str_arg(ev, args, 0, "sep");
      if (sep && sep->empty()) ev.error("empty separator");
      const int64_t maxsplit = int_arg(ev, args, 1, "maxsplit", -1);
      return str_list(name == "split" ? py_split(s, sep, maxsplit) : py_rsplit(s, sep, maxsplit));
    }
    if (name == "startswith" || name == "endswith") {
      check_args(ev, args, what.c_str(), 1, {});
      const auto a = arg(args, 0, "prefix");
      if (!a) ev.error(fmt::format("{} takes one argument", what));
      return Value(affix_match(ev, s, *a, name == "startswith"));
    }
    if (name == "replace") {
      check_args(ev, args, what.c_str(), 3, {"count"});
      const auto old = str_arg(ev, args, 0, "old"), repl = str_arg(ev, args, 1, "new");
      if (!old || !repl) ev.error("str.replace() takes two strings");
      std::string out = py_replace(s, *old, *repl, int_arg(ev, args, 2, "count", -1));
      ev.check_size(out.size());
      return Value(std::move(out));
    }
    if (name == "upper") return Value(py_upper(s));
    if (name == "lower") return Value(py_lower(s));
    if (name == "title") return Value(py_title(s));
    if (name == "capitalize") return Value(py_capitalize(s));
    if (name == "find" || name == "rfind" || name == "index") {
      const auto sub = str_arg(ev, args, 0, "sub");
      if (!sub) ev.error(fmt::format("{} takes a string", what));
      const int64_t at = py_find(s, *sub, name == "rfind");
      if (name == "index" && at < 0) ev.error("substring not found");
      return Value(at);
    }
    if (name == "count") {
      const auto sub = str_arg(ev, args, 0, "sub");
      if (!sub) ev.error("str.count() takes a string");
      return Value(py_count(s, *sub));
    }
    if (name == "join") {
      const auto items = arg(args, 0, "iterable");
      if (!items) ev.error("str.join() takes one argument");
      std::string out;
      bool first = true;
      for (const auto& item : iterate(ev, *items)) {
        if (!item.is_string()) ev.error(fmt::format("sequence item: expected str instance, {} found", item.type_name()));
        if (!first) out += s;
        out += item.as_string();
        first = false;
        ev.check_size(out.size());
      }
      return Value(std::move(out));
    }
    if (name == "splitlines") return str_list(py_splitlines(s));
    // is*(): ASCII classification, false for the empty string as in Python.
    const auto all = [&](auto pred) {
      if (s.empty()) return Value(false);
      for (const char c : s)
        if (!pred(static_cast<unsigned char>(c))) return Value(false);
      return Value(true);
    };
    if (name == "isdigit") return all([](unsigned char c) { return c >= '0' && c <= '9'; });
    if (name == "isalpha") return all([](unsigned char c) { return std::isalpha(c) != 0; });
    if (name == "isalnum") return all([](unsigned char c) { return std::isalnum(c) != 0; });
    if (name == "isspace") return all([](unsigned char c) { return std::isspace(c) != 0; });
    if (name == "islower") return Value(s != py_upper(s) && s == py_lower(s));
    return Value(s != py_lower(s) && s == py_upper(s));  // isupper
  });
}

Value dict_method(const Value& self, const std::string& name) {
  if (name == "get") {
    return Value::function(name, [self](CallArgs& args, Evaluator& ev) -> Value {
      check_args(ev, args, "dict.get()", 2, {});
      const auto key = arg(args, 0, "key");
      if (!key) ev.error("dict.get() takes a key");
      const Value fallback = args.positional.size() > 1 ? args.positional[1] : Value::none();
      if (!key->is_string()) return fallback;
      const Value* v = self.as_dict().find(key->as_string());
      return v ? *v : fallback;
    });
  }
  if (name == "items" || name == "keys" || name == "values") {
    return Value::function(name, [self, name](CallArgs& args, Evaluator& ev) -> Value {
      check_args(ev, args, ("dict." + name + "()").c_str(), 0, {});
      Value::List out;
      for (const auto& [k, v] : self.as_dict().items()) {
        if (name == "items") out.push_back(Value::list({Value(k), v}, true));
        else if (name == "keys") out.emplace_back(k);
        else out.push_back(v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "pop" || name == "update" || name == "setdefault" || name == "clear" || name == "popitem") {
    return Value::function(name, [name](CallArgs&, Evaluator& ev) -> Value {
      ev.error(fmt::format("access to attribute '{}' of 'dict' object is unsafe", name));
    });
  }
  return Value::undefined(name);
}

Value list_method(const Value& self, const std::string& name) {
  if (name == "count" || name == "index") {
    return Value::function(name, [self, name](CallArgs& args, Evaluator& ev) -> Value {
      const auto x = arg(args, 0, "x");
      if (!x) ev.error(fmt::format("list.{}() takes one argument", name));
      int64_t n = 0;
      for (size_t i = 0; i < self.as_list().size(); ++i) {
        if (!equals(self.as_list()[i], *x)) continue;
        if (name == "index") return Value(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") ev.error("value is not in list");
      return Value(n);
    });
  }
  static const char* const kMutators[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"};
  for (const char* m : kMutators)
    if (name == m)
      return Value::function(name, [name](CallArgs&, Evaluator& ev) -> Value {
        ev.error(fmt::format("access to attribute '{}' of 'list' object is unsafe", name));
      });
  return Value::undefined(name);
}

// Python slice index clamping (PySlice_AdjustIndices).
int64_t slice_index(Evaluator& ev, const Value& v, int64_t fallback) {
  if (v.is_none()) return fallback;
  if (!v.is_number() || v.is_float()) ev.error("slice indices must be integers or None");
  return v.as_int();
}

}  // namespace

Value get_attr(Evaluator& ev, const Value& obj, const std::string& name, bool item_first) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      ev.error(fmt::format("'{}' is undefined", obj.name().empty() ? name : obj.name()));
    case Value::Kind::kDict: {
      if (item_first) {
        if (const Value* v = obj.as_dict().find(name)) return *v;
        const Value m = dict_method(obj, name);
        return m.is_undefined() ? Value::undefined(name) : m;
      }
      const Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return Value::undefined(name);
    }
    case Value::Kind::kNamespace: {
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return Value::undefined(name);
    }
    case Value::Kind::kString: return string_method(obj, name);
    case Value::Kind::kList: return list_method(obj, name);
    default: return Value::undefined(name);
  }
}

Value get_item(Evaluator& ev, const Value& obj, const Value& key) {
  if (obj.is_undefined()) ev.error(fmt::format("'{}' is undefined", obj.name()));
  if (key.is_string() && obj.is_mapping()) return get_attr(ev, obj, key.as_string(), true);
  if (key.is_string() && (obj.is_string() || obj.is_list())) return get_attr(ev, obj, key.as_string(), true);
  if (!key.is_number() || key.is_float()) return Value::undefined();
  const int64_t i = key.as_int();
  if (obj.is_list()) {
    const auto n = static_cast<int64_t>(obj.as_list().size());
    const int64_t k = i < 0 ? i + n : i;
    if (k < 0 || k >= n) return Value::undefined(fmt::format("{}", i));
    return obj.as_list()[static_cast<size_t>(k)];
  }
  if (obj.is_string()) {
    const auto cps = utf8_chars(obj.as_string());
    const auto n = static_cast<int64_t>(cps.size());
    const int64_t k = i < 0 ? i + n : i;
    if (k < 0 || k >= n) return Value::undefined(fmt::format("{}", i));
    return Value(cps[static_cast<size_t>(k)]);
  }
  return Value::undefined();
}

Value slice(Evaluator& ev, const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) ev.error(fmt::format("'{}' is undefined", obj.name()));
  if (!obj.is_list() && !obj.is_string()) return Value::undefined();
  const int64_t step = slice_index(ev, step_v, 1);
  if (step == 0) ev.error("slice step cannot be zero");
  std::vector<std::string> cps;
  if (obj.is_string()) cps = utf8_chars(obj.as_string());
  const auto n = static_cast<int64_t>(obj.is_list() ? obj.as_list().size() : cps.size());
  const auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_none()) return fallback;
    int64_t k = slice_index(ev, v, fallback);
    if (k < 0) {
      k += n;
      if (k < 0) k = step < 0 ? -1 : 0;
    } else if (k >= n) {
      k = step < 0 ? n - 1 : n;
    }
    return k;
  };
  const int64_t start = clamp(start_v, step < 0 ? n - 1 : 0);
  const int64_t stop = clamp(stop_v, step < 0 ? -1 : n);
  Value::List items;
  std::string text;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_list()) items.push_back(obj.as_list()[static_cast<size_t>(i)]);
    else text += cps[static_cast<size_t>(i)];
  }
  if (obj.is_string()) return Value(std::move(text));
  return Value::list(std::move(items), obj.is_tuple());
}

bool contains(Evaluator& ev, const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;  // Undefined iterates as empty
    case Value::Kind::kString:
      if (!item.is_string())
        ev.error(fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& e : container.as_list())
        if (equals(e, item)) return true;
      return false;
    case Value::Kind::kDict: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default: ev.error(fmt::format("argument of type '{}' is not iterable", container.type_name()));
  }
}

Value::List iterate(Evaluator& ev, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kList: return v.as_list();
    case Value::Kind::kString: {
      Value::List out;
      for (auto& c : utf8_chars(v.as_string())) out.emplace_back(std::move(c));
      return out;
    }
    case Value::Kind::kDict: {
      Value::List out;
      for (const auto& [k, e] : v.as_dict().items()) out.emplace_back(k);
      return out;
    }
    default: ev.error(fmt::format("'{}' object is not iterable", v.type_name()));
  }
}

void add_globals(Scope& globals) {
  globals.vars["raise_exception"] = Value::function("raise_exception", [](CallArgs& args, Evaluator&) -> Value {
    // The template's own message, unchanged: servers show it to the client.
    throw Error(ErrorCode::kInvalidArgument, args.positional.empty() ? "" : to_str(args.positional[0]));
  });
  const auto make_dict = [](CallArgs& args, Evaluator& ev, bool ns) {
    auto d = std::make_shared<Dict>();
    for (const auto& p : args.positional) {
      if (!p.is_dict()) ev.error("namespace() and dict() take a mapping or keyword arguments");
      for (const auto& [k, v] : p.as_dict().items()) d->set(k, v);
    }
    for (const auto& [k, v] : args.keyword) d->set(k, v);
    return ns ? Value::ns(std::move(d)) : Value::dict(std::move(d));
  };
  globals.vars["namespace"] = Value::function(
      "namespace", [make_dict](CallArgs& args, Evaluator& ev) { return make_dict(args, ev, true); });
  globals.vars["dict"] =
      Value::function("dict", [make_dict](CallArgs& args, Evaluator& ev) { return make_dict(args, ev, false); });
  globals.vars["range"] = Value::function("range", [](CallArgs& args, Evaluator& ev) -> Value {
    check_args(ev, args, "range()", 3, {});
    if (args.positional.empty()) ev.error("range expected at least 1 argument, got 0");
    for (const auto& a : args.positional)
      if (!a.is_number() || a.is_float()) ev.error("range() arguments must be integers");
    int64_t start = 0, stop = 0, step = 1;
    if (args.positional.size() == 1) {
      stop = args.positional[0].as_int();
    } else {
      start = args.positional[0].as_int();
      stop = args.positional[1].as_int();
      if (args.positional.size() == 3) step = args.positional[2].as_int();
    }
    if (step == 0) ev.error("range() arg 3 must not be zero");
    // Count first: range(10**9) must fail here, not after allocating.
    const long double count = step > 0 ? (static_cast<long double>(stop) - start) / step
                                       : (static_cast<long double>(start) - stop) / -step;
    if (count > static_cast<long double>(ev.limits().max_items))
      ev.error(fmt::format("range() of more than {} items", ev.limits().max_items));
    Value::List items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      ev.step();
      items.emplace_back(i);
    }
    return Value::list(std::move(items));
  });
  globals.vars["strftime_now"] = Value::function("strftime_now", [](CallArgs& args, Evaluator& ev) -> Value {
    const auto format = str_arg(ev, args, 0, "format");
    if (!format) ev.error("strftime_now() takes a format string");
    if (format->size() > 256) ev.error("strftime_now() format is too long");
    char buf[4096];
    const size_t n = std::strftime(buf, sizeof buf, format->c_str(), &ev.now());
    return Value(std::string(buf, n));
  });
}

}  // namespace moe::chat::jinja
