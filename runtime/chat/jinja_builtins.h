#pragma once
// Helpers shared by the filters, tests, methods and globals.
#include <optional>
#include <string>

#include "runtime/chat/jinja_eval.h"

namespace moe::chat::jinja {

// The argument at `index` or named `name`; std::nullopt when neither was passed.
std::optional<Value> arg(const CallArgs& args, size_t index, const char* name);
int64_t int_arg(Evaluator& ev, const CallArgs& args, size_t index, const char* name, int64_t fallback);
std::optional<std::string> str_arg(Evaluator& ev, const CallArgs& args, size_t index, const char* name);
// Fails on keyword arguments a builtin does not take and on too many positional ones.
void check_args(Evaluator& ev, const CallArgs& args, const char* what, size_t max_positional,
                std::initializer_list<const char*> keywords);

}  // namespace moe::chat::jinja
