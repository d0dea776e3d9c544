#pragma once
// Renders a parsed template: scopes, statements, expressions and the limits that keep a hostile
// template from hanging or exhausting memory.
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_value.h"

namespace moe::chat::jinja {

struct Limits {
  size_t max_output = size_t{16} << 20;  // bytes of any one rendered string
  int64_t max_steps = 5'000'000;         // expressions evaluated + loop iterations (x4)
  int max_depth = 600;                   // nested evaluation (statements, expressions, calls)
  int max_macro_depth = 150;             // about where jinja2 hits Python's recursion limit
  size_t max_items = 1'000'000;          // elements of any one list or range
};

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
};

class Evaluator {
 public:
  // `now`: the time strftime_now formats; the current local time when absent.
  Evaluator(std::shared_ptr<Scope> globals, std::optional<std::tm> now, Limits limits = {});
  ~Evaluator();  // empties every scope of the render (breaking macro closures' cycles)
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  std::string render(const Body& body);

  // For the builtins.
  [[noreturn]] void error(const std::string& message) const;
  Value call(const Value& callee, CallArgs& args);
  void step(int64_t n = 1);
  void check_size(size_t n) const;
  const Limits& limits() const { return limits_; }
  const std::tm& now() const { return now_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  struct DepthGuard {
    explicit DepthGuard(Evaluator& e);
    ~DepthGuard() { --eval.depth_; }
    Evaluator& eval;
  };

  Flow exec_body(const Body& body, std::string& out);
  Flow exec(const Stmt& s, std::string& out);
  void exec_for(const Stmt& s, std::string& out);
  void exec_set(const Stmt& s);
  void define_macro(const Stmt& s);
  void exec_call_block(const Stmt& s, std::string& out);
  void append(std::string& out, const std::string& text);
  void assign(const std::vector<std::string>& targets, const Value& v);

  Value eval(const Expr& e);
  Value eval_binary(const std::string& op, const Value& a, const Value& b);
  bool eval_compare(const std::string& op, const Value& a, const Value& b);
  Value lookup(const std::string& name) const;
  void eval_args(const Expr& e, size_t first, CallArgs& args);

  std::shared_ptr<Scope> new_scope(std::shared_ptr<Scope> parent);

  std::shared_ptr<Scope> scope_;
  std::vector<std::weak_ptr<Scope>> scopes_;  // every scope of this render, the given one first
  std::tm now_{};
  Limits limits_;
  int64_t steps_ = 0;
  int depth_ = 0;
  int macro_depth_ = 0;
  int line_ = 0;
};

// Builtins (jinja_filters.cpp, jinja_tests.cpp, jinja_methods.cpp).
Value apply_filter(Evaluator& ev, const std::string& name, CallArgs& args);
bool apply_test(Evaluator& ev, const std::string& name, CallArgs& args);
// obj.name (attribute first, then item); `item_first` for obj[name].
Value get_attr(Evaluator& ev, const Value& obj, const std::string& name, bool item_first);
Value get_item(Evaluator& ev, const Value& obj, const Value& key);
Value slice(Evaluator& ev, const Value& obj, const Value& start, const Value& stop, const Value& step);
bool contains(Evaluator& ev, const Value& container, const Value& item);
// The elements a for loop visits: list items, dict keys, string characters.
Value::List iterate(Evaluator& ev, const Value& v);
void add_globals(Scope& globals);

}  // namespace moe::chat::jinja
