// Interpreter: executes a parsed template the way Jinja2's ImmutableSandboxedEnvironment would,
// with Jinja2's scoping: `if` shares its scope; each for-loop iteration, macro call, `with` and
// set-block body get a child scope; `{% set %}` writes to the innermost scope; a macro sees the
// scope it was defined in (at call time), never its caller's loop variables.
// Errors are thrown as JinjaError inside the jinja module and turned into a Status by Template.
// Limits (all configurable) keep any input from crashing or hanging the process.
// Thread safety: one Interpreter per render; not shared.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/jinja/ast.h"
#include "model/jinja/value.h"

namespace turbine::model::jinja {

struct CallArgs {
  ValueList args;
  std::vector<std::pair<std::string, Value>> kwargs;
  // The argument at position `pos`, else the keyword `name`, else nullptr.
  const Value* get(size_t pos, std::string_view name) const;
  Value getOr(size_t pos, std::string_view name, Value fallback) const;
};

struct RenderLimits {
  size_t max_output_bytes = 64u << 20;   // total output (and any one string built) in bytes
  int64_t max_steps = 20'000'000;        // statements + expressions evaluated
  int max_call_depth = 200;              // nested macro calls
  int max_eval_depth = 1000;             // nested expression evaluation
};

class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}
  const Value* lookup(const std::string& name) const;
  void set(const std::string& name, Value v) { vars_[name] = std::move(v); }

 private:
  std::shared_ptr<Scope> parent_;
  std::unordered_map<std::string, Value> vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interpreter {
 public:
  explicit Interpreter(RenderLimits limits) : limits_(limits) {}

  // Renders `body` in `scope`; throws JinjaError.
  std::string render(const StmtList& body, const ScopePtr& scope);

  Value eval(const Expr& e, const ScopePtr& scope);
  Value call(const Value& fn, CallArgs& args);
  Value getAttr(const Value& obj, const std::string& name);
  Value getItem(const Value& obj, const Value& key);
  // Python iteration: list items, dict keys, string characters; Undefined iterates as empty.
  ValueList iterate(const Value& v);
  // Guards a string being built against the output limit.
  void checkSize(size_t bytes) const;

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec(const StmtList& body, const ScopePtr& scope, std::string& out);
  Flow execOne(const Stmt& s, const ScopePtr& scope, std::string& out);
  void execFor(const Stmt& s, const ScopePtr& scope, std::string& out);
  void execSet(const Stmt& s, const ScopePtr& scope);
  void assign(const Expr& target, const Value& v, const ScopePtr& scope);
  Value makeMacro(const Stmt& s, const ScopePtr& scope);
  Value callMacro(const Stmt& s, const ScopePtr& defining, CallArgs& args, const Value& caller);
  Value evalInner(const Expr& e, const ScopePtr& scope);
  Value evalBinary(const Expr& e, const ScopePtr& scope);
  Value evalCompare(const Expr& e, const ScopePtr& scope);
  Value evalCall(const Expr& e, const ScopePtr& scope);
  CallArgs evalArgs(const Expr& e, const ScopePtr& scope);
  Value evalSlice(const Value& obj, const Expr& slice, const ScopePtr& scope);
  void step();

  RenderLimits limits_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  int line_ = 0;
};

// Operators shared by the interpreter and the filters.
Value binaryOp(const std::string& op, const Value& a, const Value& b, const Interpreter& in);
bool containsOp(const Value& container, const Value& item);
[[noreturn]] void failUndefined(const Value& undefined);

// Builtins (builtins.cc, filters.cc): name -> implementation.
Value applyFilter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
bool applyTest(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
bool isKnownTest(const std::string& name);
// A bound method of a str / dict / list (`s.split`), or nullptr-like Undefined when none.
Value boundMethod(const Value& obj, const std::string& name);
// Python `fmt % args` and `fmt.format(...)`.
std::string percentFormat(const std::string& fmt, const Value& args);
std::string braceFormat(const std::string& fmt, const CallArgs& args);

}  // namespace turbine::model::jinja
