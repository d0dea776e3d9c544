#pragma once
// Python str methods on UTF-8 text, as chat templates call them (strip, split, title, ...).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::chat::jinja {

// str.strip/lstrip/rstrip: `chars` absent strips Unicode whitespace as str.isspace() defines it.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit): sep absent splits on runs of whitespace.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()
int64_t py_count(std::string_view s, std::string_view sub);
// Index in code points of the first (last) occurrence, or -1.
int64_t py_find(std::string_view s, std::string_view sub, bool reverse);
std::vector<std::string> py_splitlines(std::string_view s);
bool py_isspace_cp(std::string_view ch);

}  // namespace moe::chat::jinja
