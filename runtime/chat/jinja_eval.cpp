#include "runtime/chat/jinja_eval.h"

#include <fmt/format.h>

#include <cmath>

#include "runtime/core/error.h"

namespace moe::chat::jinja {

Evaluator::DepthGuard::DepthGuard(Evaluator& e) : eval(e) {
  if (++eval.depth_ > eval.limits_.max_depth) {
    --eval.depth_;
    eval.error("the template nests or recurses too deeply");
  }
}

Evaluator::Evaluator(std::shared_ptr<Scope> globals, std::optional<std::tm> now, Limits limits)
    : scope_(std::move(globals)), limits_(limits) {
  scopes_.push_back(scope_);
  if (now) {
    now_ = *now;
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &now_);
  }
}

// A macro's value lives in the scope it closes over, so scope -> macro -> scope is a cycle of
// shared pointers: without this every render with a macro would leak its scopes.
Evaluator::~Evaluator() {
  for (const auto& weak : scopes_)
    if (const auto scope = weak.lock()) {
      scope->vars.clear();
      scope->parent.reset();
    }
}

std::shared_ptr<Scope> Evaluator::new_scope(std::shared_ptr<Scope> parent) {
  auto scope = std::make_shared<Scope>();
  scope->parent = std::move(parent);
  if (scopes_.size() >= 1024 && (scopes_.size() & (scopes_.size() - 1)) == 0)  // a long loop's: drop the dead
    std::erase_if(scopes_, [](const std::weak_ptr<Scope>& w) { return w.expired(); });
  scopes_.push_back(scope);
  return scope;
}

void Evaluator::error(const std::string& message) const {
  fail(ErrorCode::kInvalidArgument, "chat template error on line {}: {}", line_, message);
}

void Evaluator::step(int64_t n) {
  steps_ += n;
  if (steps_ > limits_.max_steps) error("the template runs too long (more than the step budget)");
}

void Evaluator::check_size(size_t n) const {
  if (n > limits_.max_output) error(fmt::format("a value grows past {} bytes", limits_.max_output));
}

std::string Evaluator::render(const Body& body) {
  std::string out;
  exec_body(body, out);
  return out;
}

void Evaluator::append(std::string& out, const std::string& text) {
  check_size(out.size() + text.size());
  out += text;
}

Evaluator::Flow Evaluator::exec_body(const Body& body, std::string& out) {
  for (const auto& s : body) {
    const Flow flow = exec(*s, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Evaluator::Flow Evaluator::exec(const Stmt& s, std::string& out) {
  DepthGuard guard(*this);
  step();
  line_ = s.line;
  switch (s.kind) {
    case Stmt::Kind::kText: append(out, s.text); break;
    case Stmt::Kind::kOutput: append(out, to_str(eval(*s.expr))); break;
    case Stmt::Kind::kIf:
      for (const auto& [cond, body] : s.branches) {
        if (!cond || eval(*cond).truthy()) return exec_body(body, out);
      }
      break;
    case Stmt::Kind::kFor: exec_for(s, out); break;
    case Stmt::Kind::kSet: exec_set(s); break;
    case Stmt::Kind::kSetBlock: {
      std::string text;
      exec_body(s.body, text);
      assign(s.targets, Value(std::move(text)));
      break;
    }
    case Stmt::Kind::kMacro: define_macro(s); break;
    case Stmt::Kind::kCallBlock: exec_call_block(s, out); break;
    case Stmt::Kind::kBreak: return Flow::kBreak;
    case Stmt::Kind::kContinue: return Flow::kContinue;
    case Stmt::Kind::kScope: return exec_body(s.body, out);
  }
  return Flow::kNormal;
}

void Evaluator::assign(const std::vector<std::string>& targets, const Value& v) {
  if (targets.size() == 1) {
    scope_->vars[targets[0]] = v;
    return;
  }
  if (!v.is_list()) error(fmt::format("cannot unpack a {} into {} names", v.type_name(), targets.size()));
  if (v.as_list().size() != targets.size())
    error(fmt::format("cannot unpack {} values into {} names", v.as_list().size(), targets.size()));
  for (size_t i = 0; i < targets.size(); ++i) scope_->vars[targets[i]] = v.as_list()[i];
}

void Evaluator::exec_set(const Stmt& s) {
  const Value v = eval(*s.expr);
  if (s.attr.empty()) {
    assign(s.targets, v);
    return;
  }
  const Value target = lookup(s.targets[0]);
  if (!target.is_namespace()) error("cannot assign attribute on non-namespace object");
  target.mutable_dict().set(s.attr, v);
}

void Evaluator::exec_for(const Stmt& s, std::string& out) {
  const Value iterable = eval(*s.expr);
  const Value::List all = iterate(*this, iterable);
  const auto saved = scope_;
  struct Restore {
    Evaluator& e;
    std::shared_ptr<Scope> saved;
    ~Restore() { e.scope_ = saved; }
  } restore{*this, saved};
  // jinja2 gives every iteration a fresh scope: a {% set %} in the body is gone by the next one.
  const auto fresh_scope = [&]() {
    scope_ = new_scope(saved);
  };

  // The `if` clause filters before the loop counts, so loop.length counts what passes.
  Value::List items;
  if (s.filter) {
    for (const auto& item : all) {
      step();
      fresh_scope();
      assign(s.targets, item);
      if (eval(*s.filter).truthy()) items.push_back(item);
    }
  } else {
    items = all;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    step(4);  // an iteration allocates a scope and a loop object: dearer than an expression
    fresh_scope();
    assign(s.targets, items[i]);
    auto loop = std::make_shared<Dict>();
    loop->set("index", Value(i + 1));
    loop->set("index0", Value(i));
    loop->set("revindex", Value(n - i));
    loop->set("revindex0", Value(n - i - 1));
    loop->set("first", Value(i == 0));
    loop->set("last", Value(i == n - 1));
    loop->set("length", Value(n));
    loop->set("depth", Value(int64_t{1}));
    loop->set("depth0", Value(int64_t{0}));
    if (i > 0) loop->set("previtem", items[i - 1]);
    if (i + 1 < n) loop->set("nextitem", items[i + 1]);
    loop->set("cycle", Value::function("cycle", [i](CallArgs& args, Evaluator& ev) {
                if (args.positional.empty()) ev.error("no items for cycling given");
                return args.positional[static_cast<size_t>(i) % args.positional.size()];
              }));
    scope_->vars["loop"] = Value::dict(std::move(loop));
    if (exec_body(s.body, out) == Flow::kBreak) break;
  }
  if (n == 0 && !s.else_body.empty()) {
    fresh_scope();
    exec_body(s.else_body, out);
  }
}

void Evaluator::define_macro(const Stmt& s) {
  const Stmt* macro = &s;
  const std::shared_ptr<Scope> closure = scope_;
  scope_->vars[s.name] = Value::function(s.name, [macro, closure](CallArgs& args, Evaluator& ev) -> Value {
    if (++ev.macro_depth_ > ev.limits_.max_macro_depth) {
      --ev.macro_depth_;
      ev.error(fmt::format("macro '{}' recurses too deeply", macro->name));
    }
    struct Restore {
      Evaluator& e;
      std::shared_ptr<Scope> saved;
      int line;
      ~Restore() {
        e.scope_ = saved;
        e.line_ = line;
        --e.macro_depth_;
      }
    } restore{ev, ev.scope_, ev.line_};
    auto frame = ev.new_scope(closure);
    if (args.positional.size() > macro->params.size())
      ev.error(fmt::format("macro '{}' takes not more than {} argument(s)", macro->name, macro->params.size()));
    ev.scope_ = frame;
    for (size_t i = 0; i < macro->params.size(); ++i) {
      if (i < args.positional.size()) {
        frame->vars[macro->params[i]] = args.positional[i];
        continue;
      }
      const Value* kw = nullptr;
      for (const auto& [k, v] : args.keyword)
        if (k == macro->params[i]) kw = &v;
      if (kw) frame->vars[macro->params[i]] = *kw;
      else if (macro->defaults[i]) frame->vars[macro->params[i]] = ev.eval(*macro->defaults[i]);
      else frame->vars[macro->params[i]] = Value::undefined(macro->params[i]);
    }
    for (const auto& [k, v] : args.keyword) {
      if (k == "caller") {
        frame->vars["caller"] = v;
        continue;
      }
      bool known = false;
      for (const auto& p : macro->params) known = known || p == k;
      if (!known) ev.error(fmt::format("macro '{}' takes no keyword argument '{}'", macro->name, k));
    }
    std::string out;
    ev.exec_body(macro->body, out);
    return Value(std::move(out));
  });
}

void Evaluator::exec_call_block(const Stmt& s, std::string& out) {
  const Stmt* block = &s;
  const std::shared_ptr<Scope> closure = scope_;
  const Value caller = Value::function("caller", [block, closure](CallArgs& args, Evaluator& ev) -> Value {
    struct Restore {
      Evaluator& e;
      std::shared_ptr<Scope> saved;
      ~Restore() { e.scope_ = saved; }
    } restore{ev, ev.scope_};
    auto frame = ev.new_scope(closure);
    for (size_t i = 0; i < block->params.size(); ++i) {
      if (i < args.positional.size()) frame->vars[block->params[i]] = args.positional[i];
      else if (block->defaults[i]) frame->vars[block->params[i]] = ev.eval(*block->defaults[i]);
      else frame->vars[block->params[i]] = Value::undefined(block->params[i]);
    }
    ev.scope_ = frame;
    std::string text;
    ev.exec_body(block->body, text);
    return Value(std::move(text));
  });
  if (s.expr->kind != Expr::Kind::kCall) error("a call block needs a macro call");
  const Value callee = eval(*s.expr->args[0]);
  CallArgs args;
  eval_args(*s.expr, 1, args);
  args.keyword.emplace_back("caller", caller);
  append(out, to_str(call(callee, args)));
}

Value Evaluator::lookup(const std::string& name) const {
  for (const Scope* sc = scope_.get(); sc; sc = sc->parent.get()) {
    const auto it = sc->vars.find(name);
    if (it != sc->vars.end()) return it->second;
  }
  return Value::undefined(name);
}

Value Evaluator::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) error(fmt::format("'{}' is undefined", callee.name()));
  if (!callee.is_function()) error(fmt::format("'{}' object is not callable", callee.type_name()));
  DepthGuard guard(*this);
  return callee.as_function()(args, *this);
}

void Evaluator::eval_args(const Expr& e, size_t first, CallArgs& args) {
  for (size_t i = first; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
}

Value Evaluator::eval(const Expr& e) {
  DepthGuard guard(*this);
  step();
  line_ = e.line;
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.literal;
    case Expr::Kind::kName: return lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      Value::List items;
      for (const auto& a : e.args) items.push_back(eval(*a));
      return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      auto d = std::make_shared<Dict>();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        const Value key = eval(*e.args[i]);
        if (!key.is_string()) error("only string keys are supported in dict literals");
        d->set(key.as_string(), eval(*e.args[i + 1]));
      }
      return Value::dict(std::move(d));
    }
    case Expr::Kind::kGetAttr: return get_attr(*this, eval(*e.args[0]), e.name, false);
    case Expr::Kind::kGetItem: {
      const Value obj = eval(*e.args[0]);
      return get_item(*this, obj, eval(*e.args[1]));
    }
    case Expr::Kind::kSlice: {
      const Value obj = eval(*e.args[0]);
      const auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
      return slice(*this, obj, part(1), part(2), part(3));
    }
    case Expr::Kind::kCall: {
      const Value callee = eval(*e.args[0]);
      CallArgs args;
      eval_args(e, 1, args);
      return call(callee, args);
    }
    case Expr::Kind::kFilter: {
      CallArgs args;
      eval_args(e, 0, args);
      line_ = e.line;
      return apply_filter(*this, e.name, args);
    }
    case Expr::Kind::kTest: {
      CallArgs args;
      eval_args(e, 0, args);
      line_ = e.line;
      return Value(apply_test(*this, e.name, args) != e.negated);
    }
    case Expr::Kind::kUnary: {
      const Value v = eval(*e.args[0]);
      if (!v.is_number()) error(fmt::format("bad operand type for unary {}: '{}'", e.name, v.type_name()));
      if (e.name == "+") return v.is_bool() ? Value(v.as_int()) : v;
      if (v.is_float()) return Value(-v.as_float());
      if (v.as_int() == INT64_MIN) error("integer overflow");
      return Value(-v.as_int());
    }
    case Expr::Kind::kBinary: {
      const Value a = eval(*e.args[0]);
      const Value b = eval(*e.args[1]);
      line_ = e.line;
      return eval_binary(e.name, a, b);
    }
    case Expr::Kind::kCompare: {
      Value left = eval(*e.args[0]);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.args[i + 1]);
        line_ = e.line;
        if (!eval_compare(e.ops[i], left, right)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case Expr::Kind::kAnd: {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    case Expr::Kind::kOr: {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    case Expr::Kind::kNot: return Value(!eval(*e.args[0]).truthy());
    case Expr::Kind::kCondExpr:
      if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
      return e.args[2] ? eval(*e.args[2]) : Value::undefined();
  }
  error("unknown expression");
}

bool Evaluator::eval_compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in") return contains(*this, b, a);
  if (op == "notin") return !contains(*this, b, a);
  try {
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return less(a, b) || equals(a, b);
    if (op == ">=") return less(b, a) || equals(a, b);
  } catch (const Error& err) {
    error(err.what());
  }
  error(fmt::format("unknown comparison '{}'", op));
}

namespace {

// The result of a __builtin_*_overflow, or an error when it overflowed.
template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b, const Evaluator& ev) {
  int64_t r = 0;
  if (op(a, b, &r)) ev.error("integer overflow");
  return r;
}

constexpr auto kAdd = [](int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); };
constexpr auto kSub = [](int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); };
constexpr auto kMul = [](int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); };

}  // namespace

Value Evaluator::eval_binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a);
    const std::string t = to_str(b);
    check_size(s.size() + t.size());
    return Value(s + t);
  }
  const auto type_error = [&]() -> Value {
    if (a.is_undefined() || b.is_undefined())
      error(fmt::format("'{}' is undefined", a.is_undefined() ? a.name() : b.name()));
    error(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
  };
  if (a.is_number() && b.is_number()) {
    const bool fl = a.is_float() || b.is_float();
    const double x = a.as_float(), y = b.as_float();
    const int64_t i = a.as_int(), j = b.as_int();
    if (op == "+") return fl ? Value(x + y) : Value(checked(kAdd, i, j, *this));
    if (op == "-") return fl ? Value(x - y) : Value(checked(kSub, i, j, *this));
    if (op == "*") return fl ? Value(x * y) : Value(checked(kMul, i, j, *this));
    if (op == "/") {
      if (y == 0) error("division by zero");
      return Value(x / y);
    }
    if (op == "//" || op == "%") {
      if (fl ? y == 0 : j == 0) error(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
      if (fl) {
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        if (op == "%") return Value(m);
        const double div = (x - m) / y;
        double fd = std::floor(div);
        if (div - fd > 0.5) fd += 1.0;
        return Value(fd);
      }
      if (i == INT64_MIN && j == -1) error("integer overflow");
      int64_t q = i / j, m = i % j;
      if (m != 0 && ((m < 0) != (j < 0))) {
        --q;
        m += j;
      }
      return op == "%" ? Value(m) : Value(q);
    }
    if (op == "**") {
      if (fl || j < 0) return Value(std::pow(x, y));
      int64_t result = 1;
      for (int64_t k = 0; k < j; ++k) {
        result = checked(kMul, result, i, *this);
        if (result == 0 || result == 1) break;
        step();
      }
      if (result == 1 && i == -1) return Value(j % 2 == 0 ? int64_t{1} : int64_t{-1});
      return Value(result);
    }
    return type_error();
  }
  if (op == "+" && a.is_string() && b.is_string()) {
    check_size(a.as_string().size() + b.as_string().size());
    return Value(a.as_string() + b.as_string());
  }
  if (op == "+" && a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    Value::List items = a.as_list();
    if (items.size() + b.as_list().size() > limits_.max_items) error("a list grows too long");
    items.insert(items.end(), b.as_list().begin(), b.as_list().end());
    return Value::list(std::move(items), a.is_tuple());
  }
  if (op == "*" && ((a.is_string() || a.is_list()) && b.is_number() && !b.is_float())) {
    const int64_t n = std::max<int64_t>(0, b.as_int());
    if (a.is_string()) {
      if (n > 0 && a.as_string().size() * static_cast<uint64_t>(n) > limits_.max_output)
        error(fmt::format("a value grows past {} bytes", limits_.max_output));
      std::string s;
      for (int64_t k = 0; k < n; ++k) s += a.as_string();
      return Value(std::move(s));
    }
    if (n > 0 && a.as_list().size() * static_cast<uint64_t>(n) > limits_.max_items) error("a list grows too long");
    Value::List items;
    for (int64_t k = 0; k < n; ++k) items.insert(items.end(), a.as_list().begin(), a.as_list().end());
    return Value::list(std::move(items), a.is_tuple());
  }
  if (op == "*" && b.is_string() && a.is_number() && !a.is_float()) return eval_binary(op, b, a);
  return type_error();
}

}  // namespace moe::chat::jinja
