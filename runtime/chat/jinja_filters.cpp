// The filters chat templates use, each as jinja2 3.1 defines it.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_strings.h"
#include "runtime/core/error.h"

namespace moe::chat::jinja {
namespace {

int64_t length_of(Evaluator& ev, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(utf8_chars(v.as_string()).size());
    case Value::Kind::kList: return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.as_dict().size());
    default: ev.error(fmt::format("object of type '{}' has no len()", v.type_name()));
  }
}

// attribute="a.b" or an integer index, as jinja's make_attrgetter resolves it.
Value attribute_of(Evaluator& ev, const Value& item, const Value& attribute) {
  if (attribute.is_number()) return get_item(ev, item, attribute);
  Value v = item;
  const std::string path = to_str(attribute);
  size_t pos = 0;
  for (;;) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = digits ? get_item(ev, v, Value(static_cast<int64_t>(std::strtoll(part.c_str(), nullptr, 10))))
               : get_item(ev, v, Value(part));
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
}

Value to_int(const Value& v, const Value& fallback) {
  if (v.is_number()) return v.is_float() ? Value(static_cast<int64_t>(std::trunc(v.as_float()))) : Value(v.as_int());
  if (v.is_string()) {
    const std::string s = py_strip(v.as_string(), std::nullopt, true, true);
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end == s.c_str() + s.size() && errno == 0) return Value(static_cast<int64_t>(i));
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d)) return Value(static_cast<int64_t>(std::trunc(d)));
  }
  return fallback;
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string()) {
    const std::string s = py_strip(v.as_string(), std::nullopt, true, true);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value(d);
  }
  return fallback;
}

// Sort and unique compare strings case-insensitively unless asked not to.
Value sort_key(const Value& v, bool case_sensitive) {
  return v.is_string() && !case_sensitive ? Value(py_lower(v.as_string())) : v;
}

Value select(Evaluator& ev, CallArgs& args, bool by_attr, bool keep) {
  const Value::List items = iterate(ev, args.positional.at(0));
  size_t next = 1;
  Value attribute;
  if (by_attr) {
    if (args.positional.size() < 2) ev.error("selectattr/rejectattr need an attribute");
    attribute = args.positional[next++];
  }
  std::string test;
  CallArgs test_args;
  test_args.positional.emplace_back();
  if (next < args.positional.size()) {
    test = to_str(args.positional[next++]);
    for (; next < args.positional.size(); ++next) test_args.positional.push_back(args.positional[next]);
    test_args.keyword = args.keyword;
  }
  Value::List out;
  for (const auto& item : items) {
    ev.step();
    const Value subject = by_attr ? attribute_of(ev, item, attribute) : item;
    bool pass;
    if (test.empty()) {
      pass = subject.truthy();
    } else {
      test_args.positional[0] = subject;
      pass = apply_test(ev, test, test_args);
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

std::string indent(const std::string& s, const Value& width, bool first, bool blank) {
  const std::string pad = width.is_string() ? width.as_string() : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
  std::vector<std::string> lines = py_splitlines(s + "\n");
  std::string out;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n" + pad;
      out += lines[i];
    }
  } else {
    out = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      out += '\n';
      if (!lines[i].empty()) out += pad + lines[i];
    }
  }
  return first ? pad + out : out;
}

}  // namespace

Value apply_filter(Evaluator& ev, const std::string& name, CallArgs& args) {
  const Value v = args.positional.at(0);
  // Arguments after the filtered value, as a filter function sees them.
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  const std::string what = fmt::format("filter '{}'", name);
  if (name == "default" || name == "d") {
    check_args(ev, rest, what.c_str(), 2, {"default_value", "boolean"});
    const Value fallback = arg(rest, 0, "default_value").value_or(Value(""));
    const bool boolean = arg(rest, 1, "boolean").value_or(Value(false)).truthy();
    return v.is_undefined() || (boolean && !v.truthy()) ? fallback : v;
  }
  if (name == "trim") {
    check_args(ev, rest, what.c_str(), 1, {"chars"});
    return Value(py_strip(to_str(v), str_arg(ev, rest, 0, "chars"), true, true));
  }
  if (name == "tojson") {
    check_args(ev, rest, what.c_str(), 1, {"indent", "ensure_ascii", "separators", "sort_keys"});
    for (const auto& [k, a] : rest.keyword)
      if ((k == "ensure_ascii" || k == "sort_keys") && a.truthy()) ev.error(fmt::format("tojson({}=True) is not supported", k));
      else if (k == "separators" && !a.is_none()) ev.error("tojson(separators=...) is not supported");
    const int64_t indent_n = int_arg(ev, rest, 0, "indent", -1);
    try {
      std::string out = to_json(v, static_cast<int>(std::min<int64_t>(indent_n, 64)));
      ev.check_size(out.size());
      return Value(std::move(out));
    } catch (const Error& e) {
      ev.error(e.what());
    }
  }
  if (name == "length" || name == "count") return Value(length_of(ev, v));
  if (name == "string") return Value(to_str(v));
  if (name == "upper") return Value(py_upper(to_str(v)));
  if (name == "lower") return Value(py_lower(to_str(v)));
  if (name == "capitalize") return Value(py_capitalize(to_str(v)));
  if (name == "title") {
    // jinja's title: a word starts after whitespace, '-', or an opening bracket.
    std::string out;
    bool start = true;
    for (const auto& ch : utf8_chars(to_str(v))) {
      const bool sep = py_isspace_cp(ch) || ch == "-" || ch == "(" || ch == "{" || ch == "[" || ch == "<";
      out += sep ? ch : (start ? py_upper(ch) : py_lower(ch));
      start = sep;
    }
    return Value(std::move(out));
  }
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v.is_undefined() ? Value("") : v;
    std::string out;
    for (const char c : to_str(v)) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value(std::move(out));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_mapping()) ev.error("items filter needs a mapping");
    Value::List out;
    for (const auto& [k, e] : v.as_dict().items()) out.push_back(Value::list({Value(k), e}, true));
    return Value::list(std::move(out));
  }
  if (name == "list") return Value::list(iterate(ev, v));
  if (name == "join") {
    check_args(ev, rest, what.c_str(), 2, {"d", "attribute"});
    const std::string sep = to_str(arg(rest, 0, "d").value_or(Value("")));
    const auto attribute = arg(rest, 1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& item : iterate(ev, v)) {
      if (!first) out += sep;
      out += to_str(attribute ? attribute_of(ev, item, *attribute) : item);
      first = false;
      ev.check_size(out.size());
    }
    return Value(std::move(out));
  }
  if (name == "first" || name == "last") {
    const Value::List items = iterate(ev, v);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = utf8_chars(v.as_string());
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value(std::move(out));
    }
    Value::List items = iterate(ev, v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "replace") {
    check_args(ev, rest, what.c_str(), 3, {"old", "new", "count"});
    const auto old = arg(rest, 0, "old"), repl = arg(rest, 1, "new");
    if (!old || !repl) ev.error("replace needs the old and new strings");
    std::string out = py_replace(to_str(v), to_str(*old), to_str(*repl), int_arg(ev, rest, 2, "count", -1));
    ev.check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "int") {
    const Value fallback = arg(rest, 0, "default").value_or(Value(int64_t{0}));
    return to_int(v, fallback);
  }
  if (name == "float") return to_float(v, arg(rest, 0, "default").value_or(Value(0.0)));
  if (name == "abs") {
    if (!v.is_number()) ev.error(fmt::format("bad operand type for abs(): '{}'", v.type_name()));
    if (v.is_float()) return Value(std::fabs(v.as_float()));
    if (v.as_int() == INT64_MIN) ev.error("integer overflow");
    return Value(static_cast<int64_t>(std::llabs(v.as_int())));
  }
  if (name == "round") {
    check_args(ev, rest, what.c_str(), 2, {"precision", "method"});
    const int64_t precision = int_arg(ev, rest, 0, "precision", 0);
    const std::string method = to_str(arg(rest, 1, "method").value_or(Value("common")));
    if (!v.is_number()) ev.error("round filter needs a number");
    if (method == "common" && !v.is_float()) return Value(v.as_int());  // Python's round(int, n) stays an int
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_float() * scale;
    double r;
    if (method == "floor") r = std::floor(x);
    else if (method == "ceil") r = std::ceil(x);
    else if (method == "common") r = std::nearbyint(x);  // round half to even, as Python's round()
    else ev.error("method must be common, ceil or floor");
    return Value(r / scale);
  }
  if (name == "map") {
    const Value::List items = iterate(ev, v);
    Value::List out;
    const auto attribute = arg(CallArgs{{}, rest.keyword}, 99, "attribute");
    if (attribute) {
      const auto fallback = arg(CallArgs{{}, rest.keyword}, 99, "default");
      for (const auto& item : items) {
        Value x = attribute_of(ev, item, *attribute);
        out.push_back(x.is_undefined() && fallback ? *fallback : x);
      }
      return Value::list(std::move(out));
    }
    if (rest.positional.empty()) ev.error("map needs a filter name or attribute=");
    const std::string filter = to_str(rest.positional[0]);
    for (const auto& item : items) {
      ev.step();
      CallArgs fa;
      fa.positional.push_back(item);
      fa.positional.insert(fa.positional.end(), rest.positional.begin() + 1, rest.positional.end());
      fa.keyword = rest.keyword;
      out.push_back(apply_filter(ev, filter, fa));
    }
    return Value::list(std::move(out));
  }
  if (name == "select") return select(ev, args, false, true);
  if (name == "reject") return select(ev, args, false, false);
  if (name == "selectattr") return select(ev, args, true, true);
  if (name == "rejectattr") return select(ev, args, true, false);
  if (name == "unique" || name == "sort") {
    const bool case_sensitive = arg(rest, name == "sort" ? 1 : 0, "case_sensitive").value_or(Value(false)).truthy();
    const auto attribute = arg(rest, name == "sort" ? 2 : 1, "attribute");
    Value::List items = iterate(ev, v);
    const auto key = [&](const Value& item) {
      return sort_key(attribute ? attribute_of(ev, item, *attribute) : item, case_sensitive);
    };
    if (name == "sort") {
      const bool reverse = arg(rest, 0, "reverse").value_or(Value(false)).truthy();
      try {
        std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
          return reverse ? less(key(b), key(a)) : less(key(a), key(b));
        });
      } catch (const Error& e) {
        ev.error(e.what());
      }
      return Value::list(std::move(items));
    }
    Value::List out, seen;
    for (const auto& item : items) {
      const Value k = key(item);
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
        seen.push_back(k);
        out.push_back(item);
      }
      ev.step();
    }
    return Value::list(std::move(out));
  }
  if (name == "indent") {
    check_args(ev, rest, what.c_str(), 3, {"width", "first", "blank"});
    const Value width = arg(rest, 0, "width").value_or(Value(int64_t{4}));
    if (!width.is_string() && (!width.is_number() || width.is_float())) ev.error("indent width must be a number or string");
    if (width.is_number() && width.as_int() > 1024) ev.error("indent width is too large");
    std::string out = indent(to_str(v), width, arg(rest, 1, "first").value_or(Value(false)).truthy(),
                             arg(rest, 2, "blank").value_or(Value(false)).truthy());
    ev.check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (const unsigned char c : to_str(v)) {
      const bool word = std::isalnum(c) || c == '_' || c >= 0x80;
      if (word && !in_word) ++n;
      in_word = word;
    }
    return Value(n);
  }
  if (name == "sum") {
    Value total(int64_t{0});
    for (const auto& item : iterate(ev, v)) {
      if (!item.is_number()) ev.error("sum filter needs numbers");
      total = total.is_float() || item.is_float() ? Value(total.as_float() + item.as_float())
                                                  : Value(total.as_int() + item.as_int());
    }
    return total;
  }
  ev.error(fmt::format("no filter named '{}'", name));
}

}  // namespace moe::chat::jinja
