#pragma once
// Builds the syntax tree from the lexer's pieces; throws moe::Error(kInvalidArgument) naming the
// line of a syntax error.
#include <string_view>

#include "runtime/chat/jinja_ast.h"

namespace moe::chat::jinja {

Body parse(std::string_view source);

}  // namespace moe::chat::jinja
