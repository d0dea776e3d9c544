#include "runtime/chat/jinja_parser.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <initializer_list>

#include "runtime/chat/jinja_lexer.h"

namespace moe::chat::jinja {
namespace {

// Deeper nesting than this is hostile input: refuse it before it can exhaust the stack.
constexpr int kMaxNesting = 200;

const Token kEndToken{Token::Kind::kEnd, "", 0};

class Parser {
 public:
  explicit Parser(std::vector<Piece> pieces) : pieces_(std::move(pieces)) {}

  Body parse_template() {
    std::string found;
    Body body = parse_body({}, &found, 1);
    return body;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting) syntax_error(parser.line(), "the template nests too deeply");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  // --- token cursor over the current tag ---
  const Token& peek(size_t ahead = 0) const {
    if (!toks_ || t_ + ahead >= toks_->size()) return kEndToken;
    return (*toks_)[t_ + ahead];
  }
  const Token& next() {
    const Token& tok = peek();
    if (tok.kind != Token::Kind::kEnd) ++t_;
    return tok;
  }
  int line() const { return peek().line ? peek().line : piece_line_; }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::kOp && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::kName && peek(ahead).text == name;
  }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void unexpected(const std::string& expected) const {
    const Token& tok = peek();
    const std::string got = tok.kind == Token::Kind::kEnd ? "the end of the tag" : fmt::format("'{}'", tok.text);
    syntax_error(line(), fmt::format("expected {}, found {}", expected, got));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected(fmt::format("'{}'", op));
  }
  std::string expect_name() {
    if (peek().kind != Token::Kind::kName) unexpected("a name");
    return next().text;
  }
  void expect_end() {
    if (peek().kind != Token::Kind::kEnd) unexpected("the end of the tag");
  }

  ExprPtr make(Expr::Kind kind, int ln) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = ln;
    return e;
  }

  // --- statements ---
  // Parses pieces until a {% tag %} whose keyword is in `ends` (returned in *found, with the
  // cursor after the keyword), or the end of the template when `ends` is empty.
  Body parse_body(std::initializer_list<const char*> ends, std::string* found, int open_line) {
    DepthGuard guard(*this);
    Body body;
    while (idx_ < pieces_.size()) {
      Piece& piece = pieces_[idx_++];
      toks_ = &piece.tokens;
      t_ = 0;
      piece_line_ = piece.line;
      if (piece.kind == Piece::Kind::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = piece.line;
        s->text = std::move(piece.text);
        body.push_back(std::move(s));
        continue;
      }
      if (piece.kind == Piece::Kind::kExpr) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = piece.line;
        s->expr = parse_tuple();
        expect_end();
        body.push_back(std::move(s));
        continue;
      }
      const std::string keyword = expect_name();
      for (const char* end : ends)
        if (keyword == end) {
          *found = keyword;
          return body;
        }
      body.push_back(parse_statement(keyword, piece.line));
    }
    if (ends.size() != 0)
      syntax_error(open_line, fmt::format("the block opened here is never closed (no '{}')", *(ends.end() - 1)));
    return body;
  }

  StmtPtr parse_statement(const std::string& keyword, int ln) {
    auto s = std::make_unique<Stmt>();
    s->line = ln;
    std::string found;
    if (keyword == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond = parse_expr();
      expect_end();
      for (;;) {
        Body body = parse_body({"elif", "else", "endif"}, &found, ln);
        s->branches.emplace_back(std::move(cond), std::move(body));
        if (found == "elif") {
          cond = parse_expr();
          expect_end();
          continue;
        }
        if (found == "else") {
          expect_end();
          Body else_body = parse_body({"endif"}, &found, ln);
          s->branches.emplace_back(nullptr, std::move(else_body));
        }
        expect_end();
        return s;
      }
    }
    if (keyword == "for") {
      s->kind = Stmt::Kind::kFor;
      s->targets = parse_targets();
      if (!skip_name("in")) unexpected("'in'");
      s->expr = parse_tuple(/*condexpr=*/false);
      if (skip_name("if")) s->filter = parse_expr();
      if (is_name("recursive")) syntax_error(line(), "recursive for loops are not supported");
      expect_end();
      ++loop_depth_;
      s->body = parse_body({"else", "endfor"}, &found, ln);
      --loop_depth_;
      if (found == "else") {
        expect_end();
        s->else_body = parse_body({"endfor"}, &found, ln);
      }
      expect_end();
      return s;
    }
    if (keyword == "set") {
      s->targets = parse_targets();
      if (s->targets.size() == 1 && skip_op(".")) s->attr = expect_name();
      if (skip_op("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = parse_tuple();
        expect_end();
        return s;
      }
      if (s->targets.size() != 1 || !s->attr.empty()) unexpected("'='");
      expect_end();
      s->kind = Stmt::Kind::kSetBlock;
      s->body = parse_body({"endset"}, &found, ln);
      expect_end();
      return s;
    }
    if (keyword == "macro" || keyword == "call") {
      s->kind = keyword == "macro" ? Stmt::Kind::kMacro : Stmt::Kind::kCallBlock;
      if (keyword == "macro") s->name = expect_name();
      if (keyword == "macro" || is_op("(")) parse_params(*s);
      if (keyword == "call") s->expr = parse_expr();
      expect_end();
      const int saved_loops = loop_depth_;
      loop_depth_ = 0;  // break/continue cannot leave a macro
      s->body = parse_body({keyword == "macro" ? "endmacro" : "endcall"}, &found, ln);
      loop_depth_ = saved_loops;
      if (peek().kind == Token::Kind::kName) next();  // {% endmacro name %}
      expect_end();
      return s;
    }
    if (keyword == "break" || keyword == "continue") {
      if (loop_depth_ == 0) syntax_error(ln, fmt::format("'{}' outside a for loop", keyword));
      s->kind = keyword == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      expect_end();
      return s;
    }
    if (keyword == "generation") {  // transformers' assistant-mask extension: renders its body
      s->kind = Stmt::Kind::kScope;
      expect_end();
      s->body = parse_body({"endgeneration"}, &found, ln);
      expect_end();
      return s;
    }
    syntax_error(ln, fmt::format("unknown or unsupported tag '{}'", keyword));
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = skip_op("(");
    names.push_back(expect_name());
    while (skip_op(",")) {
      if (paren && is_op(")")) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

  void parse_params(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      s.params.push_back(expect_name());
      s.defaults.push_back(skip_op("=") ? parse_expr() : nullptr);
    }
    expect_op(")");
  }

  // --- expressions ---
  bool starts_expression() const {
    const Token& tok = peek();
    if (tok.kind == Token::Kind::kEnd) return false;
    if (tok.kind != Token::Kind::kOp) return true;
    return tok.text == "(" || tok.text == "[" || tok.text == "{" || tok.text == "-" || tok.text == "+";
  }

  // a, b, c without parentheses makes a tuple (set/for/output).
  ExprPtr parse_tuple(bool condexpr = true) {
    const int ln = line();
    ExprPtr first = condexpr ? parse_expr() : parse_or();
    if (!is_op(",")) return first;
    auto tuple = make(Expr::Kind::kTuple, ln);
    tuple->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (!starts_expression() || is_name("if")) break;
      tuple->args.push_back(condexpr ? parse_expr() : parse_or());
    }
    return tuple;
  }

  ExprPtr parse_expr() {
    DepthGuard guard(*this);
    const int ln = line();
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      auto cond = make(Expr::Kind::kCondExpr, ln);
      cond->args.push_back(std::move(expr));
      cond->args.push_back(parse_or());
      cond->args.push_back(skip_name("else") ? parse_expr() : nullptr);
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr binary(Expr::Kind kind, ExprPtr left, ExprPtr right, std::string op, int ln) {
    auto e = make(kind, ln);
    e->name = std::move(op);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const int ln = next().line;
      left = binary(Expr::Kind::kOr, std::move(left), parse_and(), "or", ln);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const int ln = next().line;
      left = binary(Expr::Kind::kAnd, std::move(left), parse_not(), "and", ln);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto e = make(Expr::Kind::kNot, next().line);
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int ln = line();
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    for (;;) {
      std::string op;
      const Token& tok = peek();
      if (tok.kind == Token::Kind::kOp &&
          (tok.text == "==" || tok.text == "!=" || tok.text == "<" || tok.text == "<=" || tok.text == ">" ||
           tok.text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, ln);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      left = binary(Expr::Kind::kBinary, std::move(left), parse_concat(), op.text, op.line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const int ln = next().line;
      left = binary(Expr::Kind::kBinary, std::move(left), parse_math2(), "~", ln);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      left = binary(Expr::Kind::kBinary, std::move(left), parse_pow(), op.text, op.line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const int ln = next().line;
      left = binary(Expr::Kind::kBinary, std::move(left), parse_unary(true), "**", ln);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& op = next();
      node = make(Expr::Kind::kUnary, op.line);
      node->name = op.text;
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    const int ln = line();
    switch (tok.kind) {
      case Token::Kind::kName: {
        next();
        auto e = make(Expr::Kind::kLiteral, ln);
        if (tok.text == "true" || tok.text == "True") e->literal = Value(true);
        else if (tok.text == "false" || tok.text == "False") e->literal = Value(false);
        else if (tok.text == "none" || tok.text == "None") e->literal = Value::none();
        else {
          e->kind = Expr::Kind::kName;
          e->name = tok.text;
        }
        return e;
      }
      case Token::Kind::kString: {
        std::string s;
        while (peek().kind == Token::Kind::kString) s += next().text;
        auto e = make(Expr::Kind::kLiteral, ln);
        e->literal = Value(std::move(s));
        return e;
      }
      case Token::Kind::kInt: {
        next();
        auto e = make(Expr::Kind::kLiteral, ln);
        errno = 0;
        const long long v = std::strtoll(tok.text.c_str(), nullptr, 10);
        if (errno == ERANGE) syntax_error(ln, fmt::format("integer literal {} is too large", tok.text));
        e->literal = Value(static_cast<int64_t>(v));
        return e;
      }
      case Token::Kind::kFloat: {
        next();
        auto e = make(Expr::Kind::kLiteral, ln);
        e->literal = Value(std::strtod(tok.text.c_str(), nullptr));
        return e;
      }
      case Token::Kind::kEnd: unexpected("an expression");
      case Token::Kind::kOp: break;
    }
    if (skip_op("(")) {
      if (skip_op(")")) return make(Expr::Kind::kTuple, ln);
      ExprPtr first = parse_expr();
      if (skip_op(")")) return first;
      auto tuple = make(Expr::Kind::kTuple, ln);
      tuple->args.push_back(std::move(first));
      while (skip_op(",")) {
        if (is_op(")")) break;
        tuple->args.push_back(parse_expr());
      }
      expect_op(")");
      return tuple;
    }
    if (skip_op("[")) {
      auto list = make(Expr::Kind::kList, ln);
      while (!is_op("]")) {
        if (!list->args.empty()) expect_op(",");
        if (is_op("]")) break;
        list->args.push_back(parse_expr());
      }
      expect_op("]");
      return list;
    }
    if (skip_op("{")) {
      auto dict = make(Expr::Kind::kDict, ln);
      while (!is_op("}")) {
        if (!dict->args.empty()) expect_op(",");
        if (is_op("}")) break;
        dict->args.push_back(parse_expr());
        expect_op(":");
        dict->args.push_back(parse_expr());
      }
      expect_op("}");
      return dict;
    }
    unexpected("an expression");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      const int ln = line();
      if (skip_op(".")) {
        const Token& tok = next();
        if (tok.kind == Token::Kind::kName) {
          auto e = make(Expr::Kind::kGetAttr, ln);
          e->name = tok.text;
          e->args.push_back(std::move(node));
          node = std::move(e);
        } else if (tok.kind == Token::Kind::kInt) {
          auto e = make(Expr::Kind::kGetItem, ln);
          e->args.push_back(std::move(node));
          auto index = make(Expr::Kind::kLiteral, ln);
          index->literal = Value(static_cast<int64_t>(std::strtoll(tok.text.c_str(), nullptr, 10)));
          e->args.push_back(std::move(index));
          node = std::move(e);
        } else {
          syntax_error(ln, "expected an attribute name after '.'");
        }
      } else if (skip_op("[")) {
        node = parse_subscript(std::move(node), ln);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node, int ln) {
    ExprPtr start, stop, step;
    bool slice = false;
    if (!is_op(":")) start = parse_expr();
    if (skip_op(":")) {
      slice = true;
      if (!is_op("]") && !is_op(":")) stop = parse_expr();
      if (skip_op(":") && !is_op("]")) step = parse_expr();
    }
    expect_op("]");
    auto e = make(slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, ln);
    e->args.push_back(std::move(node));
    e->args.push_back(std::move(start));
    if (slice) {
      e->args.push_back(std::move(stop));
      e->args.push_back(std::move(step));
    }
    return e;
  }

  void parse_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (!e.args.empty() || !e.kwargs.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) syntax_error(line(), "*args and **kwargs in calls are not supported");
      if (peek().kind == Token::Kind::kName && is_op("=", 1)) {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expr());
      } else {
        if (!e.kwargs.empty()) syntax_error(line(), "a positional argument follows a keyword argument");
        e.args.push_back(parse_expr());
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(Expr::Kind::kCall, line());
    Expr tmp;
    tmp.kind = Expr::Kind::kCall;
    parse_args(tmp);
    e->args.push_back(std::move(callee));
    for (auto& a : tmp.args) e->args.push_back(std::move(a));
    e->kwargs = std::move(tmp.kwargs);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    for (;;) {
      const int ln = line();
      if (skip_op("|")) {
        auto e = make(Expr::Kind::kFilter, ln);
        e->name = expect_name();
        if (is_op("(")) {
          Expr tmp;
          tmp.kind = Expr::Kind::kFilter;
          parse_args(tmp);
          e->args.push_back(std::move(node));
          for (auto& a : tmp.args) e->args.push_back(std::move(a));
          e->kwargs = std::move(tmp.kwargs);
        } else {
          e->args.push_back(std::move(node));
        }
        node = std::move(e);
      } else if (skip_name("is")) {
        auto e = make(Expr::Kind::kTest, ln);
        e->negated = skip_name("not");
        e->name = expect_name();
        e->args.push_back(std::move(node));
        if (is_op("(")) {
          Expr tmp;
          tmp.kind = Expr::Kind::kTest;
          parse_args(tmp);
          for (auto& a : tmp.args) e->args.push_back(std::move(a));
          e->kwargs = std::move(tmp.kwargs);
        } else {
          const Token& tok = peek();
          const bool arg_start = tok.kind == Token::Kind::kName || tok.kind == Token::Kind::kString ||
                                 tok.kind == Token::Kind::kInt || tok.kind == Token::Kind::kFloat ||
                                 is_op("[") || is_op("{");
          if (arg_start && !is_name("else") && !is_name("or") && !is_name("and"))
            e->args.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(e);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  std::vector<Piece> pieces_;
  size_t idx_ = 0;
  const std::vector<Token>* toks_ = nullptr;
  size_t t_ = 0;
  int piece_line_ = 1;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(std::string_view source) { return Parser(lex(source)).parse_template(); }

}  // namespace moe::chat::jinja
