#pragma once
// Splits a template into text and tags the way jinja2's lexer does in transformers' chat
// template environment (trim_blocks and lstrip_blocks on, keep_trailing_newline off), and the
// inside of each {{ }} / {% %} tag into tokens.
#include <string>
#include <string_view>
#include <vector>

namespace moe::chat::jinja {

struct Token {
  enum class Kind { kName, kString, kInt, kFloat, kOp, kEnd };
  Kind kind;
  std::string text;  // a string literal's decoded value
  int line;
};

struct Piece {
  enum class Kind { kText, kExpr, kStmt };
  Kind kind;
  std::string text;           // kText
  std::vector<Token> tokens;  // kExpr / kStmt, ending with a kEnd token
  int line;
};

// Throws moe::Error(kInvalidArgument) naming the line for an unclosed tag, string or comment,
// or a character no token starts with.
std::vector<Piece> lex(std::string_view source);

[[noreturn]] void syntax_error(int line, const std::string& what);

}  // namespace moe::chat::jinja
