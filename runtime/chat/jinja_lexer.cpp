#include "runtime/chat/jinja_lexer.h"

#include <fmt/format.h>

#include <cstring>

#include "runtime/core/error.h"

namespace moe::chat::jinja {

void syntax_error(int line, const std::string& what) {
  fail(ErrorCode::kInvalidArgument, "chat template syntax error on line {}: {}", line, what);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// jinja2 normalises every newline to "\n" and drops one trailing newline of the source.
std::string normalize_newlines(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's unicode-escape decoding of a string literal body; unknown escapes stay as written.
std::string decode_escapes(std::string_view body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out += body[i];
      continue;
    }
    const char e = body[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // a backslash-newline continues the literal
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        bool ok = i + n < body.size();
        for (size_t k = 1; ok && k <= n; ++k) {
          const int h = hex_value(body[i + k]);
          if (h < 0) ok = false;
          else cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (!ok || cp > 0x10FFFF) {
          out += '\\';
          out += e;
          break;
        }
        append_utf8(out, cp);
        i += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            cp = cp * 8 + static_cast<uint32_t>(body[++i] - '0');
          append_utf8(out, cp);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  std::vector<Piece> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const size_t p = find_tag(pos_);
      std::string text = src_.substr(pos_, p == std::string::npos ? std::string::npos : p - pos_);
      if (p == std::string::npos) {
        emit_text(std::move(text));
        break;
      }
      const char kind = src_[p + 1];
      const char mod = p + 2 < src_.size() ? src_[p + 2] : '\0';
      if (mod == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (mod != '+' && kind != '{') {
        // lstrip_blocks: drop the indentation before a block or comment tag at a line start.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && is_space(text[i]);
          if (blank) text.resize(l_pos);
        }
      }
      line_ += count_newlines(pos_, p);
      emit_text(std::move(text));
      size_t q = p + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      if (kind == '#') {
        q = lex_comment(q);
      } else {
        q = lex_tag(q, kind == '{');
      }
      line_starting = q > 0 && src_[q - 1] == '\n';
      pos_ = q;
    }
    return std::move(pieces_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  int count_newlines(size_t from, size_t to) const {
    int n = 0;
    for (size_t i = from; i < to && i < src_.size(); ++i) n += src_[i] == '\n';
    return n;
  }

  void emit_text(std::string text) {
    if (text.empty()) return;
    pieces_.push_back(Piece{Piece::Kind::kText, std::move(text), {}, line_});
  }

  // After a tag's closing delimiter: "-" eats all whitespace, trim_blocks one newline.
  size_t after_close(size_t q, char mod, bool block) {
    if (mod == '-') {
      while (q < src_.size() && is_space(src_[q])) ++q;
    } else if (block && mod != '+' && q < src_.size() && src_[q] == '\n') {
      ++q;
    }
    return q;
  }

  size_t lex_comment(size_t q) {
    const size_t end = src_.find("#}", q);
    if (end == std::string::npos) syntax_error(line_, "missing end of comment tag");
    const char mod = end > q && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    const size_t next = end + 2;
    line_ += count_newlines(q, next);
    const size_t after = after_close(next, mod, true);
    line_ += count_newlines(next, after);
    return after;
  }

  size_t lex_tag(size_t q, bool expr) {
    Piece piece{expr ? Piece::Kind::kExpr : Piece::Kind::kStmt, {}, {}, line_};
    const char close = expr ? '}' : '%';
    int depth = 0;  // open brackets: a "}}" inside a dict literal does not end the tag
    for (;;) {
      while (q < src_.size() && is_space(src_[q])) {
        line_ += src_[q] == '\n';
        ++q;
      }
      if (q >= src_.size()) syntax_error(piece.line, expr ? "unclosed '{{'" : "unclosed '{%'");
      if (depth == 0) {
        char mod = '\0';
        size_t d = q;
        const std::string closer = std::string(1, close) + "}";
        if ((src_[q] == '-' || src_[q] == '+') && src_.compare(q + 1, 2, closer) == 0) {
          mod = src_[q];
          d = q + 1;
        }
        if (src_.compare(d, 2, closer) == 0) {
          piece.tokens.push_back(Token{Token::Kind::kEnd, "", line_});
          pieces_.push_back(std::move(piece));
          const size_t after = after_close(d + 2, mod, !expr);
          line_ += count_newlines(d + 2, after);
          return after;
        }
      }
      q = lex_token(q, piece.tokens, depth);
    }
  }

  size_t lex_token(size_t q, std::vector<Token>& out, int& depth) {
    const char c = src_[q];
    if (is_name_start(c)) {
      size_t e = q;
      while (e < src_.size() && is_name_char(src_[e])) ++e;
      out.push_back(Token{Token::Kind::kName, src_.substr(q, e - q), line_});
      return e;
    }
    if (is_digit(c)) return lex_number(q, out);
    if (c == '\'' || c == '"') {
      size_t e = q + 1;
      while (e < src_.size() && src_[e] != c) e += src_[e] == '\\' ? 2 : 1;
      if (e >= src_.size()) syntax_error(line_, "unterminated string literal");
      const std::string body = src_.substr(q + 1, e - q - 1);
      out.push_back(Token{Token::Kind::kString, decode_escapes(body), line_});
      line_ += count_newlines(q, e);
      return e + 1;
    }
    static const char* const kTwo[] = {"**", "//", "==", "!=", "<=", ">="};
    for (const char* op : kTwo)
      if (src_.compare(q, 2, op) == 0) {
        out.push_back(Token{Token::Kind::kOp, op, line_});
        return q + 2;
      }
    if (std::strchr("+-*/%~<>=()[]{},.:|", c) == nullptr || c == '\0')
      syntax_error(line_, fmt::format("unexpected character '{}'", c));
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    out.push_back(Token{Token::Kind::kOp, std::string(1, c), line_});
    return q + 1;
  }

  size_t lex_number(size_t q, std::vector<Token>& out) {
    const auto digits = [&](size_t i) {
      while (i < src_.size() && (is_digit(src_[i]) || (src_[i] == '_' && i + 1 < src_.size() && is_digit(src_[i + 1]))))
        ++i;
      return i;
    };
    size_t e = digits(q);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && is_digit(src_[x])) {
        e = digits(x);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = q; i < e; ++i)
      if (src_[i] != '_') text += src_[i];
    out.push_back(Token{is_float ? Token::Kind::kFloat : Token::Kind::kInt, text, line_});
    return e;
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Piece> pieces_;
};

}  // namespace

std::vector<Piece> lex(std::string_view source) { return Lexer(normalize_newlines(source)).run(); }

}  // namespace moe::chat::jinja
