#include "model/jinja/interpreter.h"

#include <algorithm>

namespace turbine::model::jinja {

const Value* CallArgs::get(size_t pos, std::string_view name) const {
  if (pos < args.size()) return &args[pos];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value CallArgs::getOr(size_t pos, std::string_view name, Value fallback) const {
  const Value* v = get(pos, name);
  return v ? *v : std::move(fallback);
}

const Value* Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent_.get()) {
    auto it = s->vars_.find(name);
    if (it != s->vars_.end()) return &it->second;
  }
  return nullptr;
}

void failUndefined(const Value& undefined) {
  throwRuntime(undefined.str().empty() ? "undefined value" : undefined.str());
}

void Interpreter::step() {
  if (++steps_ > limits_.max_steps) throwRuntime("template exceeded the step limit (runaway loop?)");
}

void Interpreter::checkSize(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    throwRuntime("template output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
}

std::string Interpreter::render(const StmtList& body, const ScopePtr& scope) {
  std::string out;
  try {
    exec(body, scope, out);
  } catch (JinjaError& e) {
    if (e.line == 0) e.line = line_;
    throw;
  }
  return out;
}

// ---- statements ---------------------------------------------------------------------------

Interpreter::Flow Interpreter::exec(const StmtList& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = execOne(*s, scope, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::execOne(const Stmt& s, const ScopePtr& scope, std::string& out) {
  step();
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::kText: out += s.text; break;
    case StmtKind::kPrint: {
      Value v = eval(*s.expr, scope);
      out += v.toStr();
      break;
    }
    case StmtKind::kIf: {
      for (const auto& [test, body] : s.branches) {
        if (eval(*test, scope).truthy()) return exec(body, scope, out);
      }
      return exec(s.else_body, scope, out);
    }
    case StmtKind::kFor: execFor(s, scope, out); break;
    case StmtKind::kSet: execSet(s, scope); break;
    case StmtKind::kSetBlock: {
      auto inner = std::make_shared<Scope>(scope);
      std::string text;
      exec(s.body, inner, text);
      Value v(std::move(text));
      if (s.filter) {
        // The filter chain was parsed with a null input; feed the body text in at its root.
        std::vector<const Expr*> chain;
        for (const Expr* f = s.filter.get(); f; f = f->a.get()) chain.push_back(f);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
          CallArgs args = evalArgs(**it, scope);
          v = applyFilter(*this, (*it)->name, v, args);
        }
      }
      assign(*s.target, v, scope);
      break;
    }
    case StmtKind::kMacro: scope->set(s.name, makeMacro(s, scope)); break;
    case StmtKind::kCallBlock: {
      const Stmt* block = &s;
      std::weak_ptr<Scope> weak = scope;
      Value caller = Value::callable(
          [this, block, weak](Interpreter&, CallArgs& args) {
            ScopePtr defining = weak.lock();
            if (!defining) throwRuntime("caller() used after its scope ended");
            return callMacro(*block, defining, args, Value());
          },
          "caller");
      const Expr& call_expr = *s.expr;
      Value fn = eval(*call_expr.a, scope);
      CallArgs args = evalArgs(call_expr, scope);
      args.kwargs.emplace_back("caller", caller);
      out += call(fn, args).toStr();
      break;
    }
    case StmtKind::kFilterBlock: {
      auto inner = std::make_shared<Scope>(scope);
      std::string text;
      exec(s.body, inner, text);
      Value v(std::move(text));
      std::vector<const Expr*> chain;
      for (const Expr* f = s.filter.get(); f; f = f->a.get()) chain.push_back(f);
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        CallArgs args = evalArgs(**it, scope);
        v = applyFilter(*this, (*it)->name, v, args);
      }
      out += v.toStr();
      break;
    }
    case StmtKind::kWith: {
      auto inner = std::make_shared<Scope>(scope);
      for (const auto& [name, expr] : s.assigns) inner->set(name, eval(*expr, scope));
      exec(s.body, inner, out);
      break;
    }
    case StmtKind::kBreak: return Flow::kBreak;
    case StmtKind::kContinue: return Flow::kContinue;
  }
  checkSize(out.size());
  return Flow::kNormal;
}

void Interpreter::execSet(const Stmt& s, const ScopePtr& scope) {
  Value v = eval(*s.expr, scope);
  if (s.attr.empty()) {
    assign(*s.target, v, scope);
    return;
  }
  const Value* ns = scope->lookup(s.name);
  if (!ns || !ns->isNamespace()) throwRuntime("cannot assign attribute on non-namespace object");
  ns->set(Value(s.attr), std::move(v));
}

void Interpreter::assign(const Expr& target, const Value& v, const ScopePtr& scope) {
  if (target.kind == ExprKind::kName) {
    scope->set(target.name, v);
    return;
  }
  ValueList items = iterate(v);
  if (items.size() != target.args.size()) {
    throwRuntime(items.size() > target.args.size()
                     ? "too many values to unpack (expected " + std::to_string(target.args.size()) + ")"
                     : "not enough values to unpack (expected " + std::to_string(target.args.size()) +
                           ", got " + std::to_string(items.size()) + ")");
  }
  for (size_t i = 0; i < items.size(); ++i) assign(*target.args[i], items[i], scope);
}

static Value makeLoop(const ValueList& items, size_t i) {
  int64_t n = static_cast<int64_t>(items.size());
  int64_t idx = static_cast<int64_t>(i);
  ValuePairs p;
  p.reserve(12);
  p.emplace_back(Value("index"), Value(idx + 1));
  p.emplace_back(Value("index0"), Value(idx));
  p.emplace_back(Value("revindex"), Value(n - idx));
  p.emplace_back(Value("revindex0"), Value(n - idx - 1));
  p.emplace_back(Value("first"), Value(i == 0));
  p.emplace_back(Value("last"), Value(idx == n - 1));
  p.emplace_back(Value("length"), Value(n));
  p.emplace_back(Value("depth"), Value(1));
  p.emplace_back(Value("depth0"), Value(0));
  if (i > 0) p.emplace_back(Value("previtem"), items[i - 1]);
  if (idx + 1 < n) p.emplace_back(Value("nextitem"), items[i + 1]);
  p.emplace_back(Value("cycle"), Value::callable(
                                     [idx](Interpreter&, CallArgs& args) -> Value {
                                       if (args.args.empty()) throwRuntime("no items for cycling given");
                                       return args.args[static_cast<size_t>(idx) % args.args.size()];
                                     },
                                     "cycle"));
  return Value::dict(std::move(p));
}

void Interpreter::execFor(const Stmt& s, const ScopePtr& scope, std::string& out) {
  Value seq = eval(*s.expr, scope);
  if (!seq.isUndefined() && !seq.isList() && !seq.isDict() && !seq.isString()) {
    throwRuntime("'" + seq.typeName() + "' object is not iterable");
  }
  ValueList items = iterate(seq);
  if (s.filter) {
    ValueList kept;
    for (auto& item : items) {
      auto probe = std::make_shared<Scope>(scope);
      assign(*s.target, item, probe);
      if (eval(*s.filter, probe).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec(s.else_body, scope, out);
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    step();
    auto inner = std::make_shared<Scope>(scope);
    assign(*s.target, items[i], inner);
    inner->set("loop", makeLoop(items, i));
    if (exec(s.body, inner, out) == Flow::kBreak) break;
  }
}

Value Interpreter::makeMacro(const Stmt& s, const ScopePtr& scope) {
  const Stmt* macro = &s;
  std::weak_ptr<Scope> weak = scope;
  return Value::callable(
      [macro, weak](Interpreter& in, CallArgs& args) {
        ScopePtr defining = weak.lock();
        if (!defining) throwRuntime("macro '" + macro->name + "' used after its scope ended");
        Value caller;
        for (auto it = args.kwargs.begin(); it != args.kwargs.end(); ++it) {
          if (it->first == "caller") {
            caller = it->second;
            args.kwargs.erase(it);
            break;
          }
        }
        return in.callMacro(*macro, defining, args, caller);
      },
      s.name);
}

Value Interpreter::callMacro(const Stmt& s, const ScopePtr& defining, CallArgs& args, const Value& caller) {
  if (++call_depth_ > limits_.max_call_depth) {
    --call_depth_;
    throwRuntime("maximum macro recursion depth exceeded");
  }
  struct Guard {
    int& d;
    ~Guard() { --d; }
  } guard{call_depth_};
  const std::string what = s.kind == StmtKind::kMacro ? "macro '" + s.name + "'" : "caller";
  if (args.args.size() > s.params.size()) {
    throwRuntime(what + " takes not more than " + std::to_string(s.params.size()) + " argument(s)");
  }
  auto inner = std::make_shared<Scope>(defining);
  if (!caller.isUndefined()) inner->set("caller", caller);
  size_t first_default = s.params.size() - s.defaults.size();
  for (size_t i = 0; i < s.params.size(); ++i) {
    const std::string& p = s.params[i];
    const Value* given = i < args.args.size() ? &args.args[i] : nullptr;
    for (const auto& [k, v] : args.kwargs) {
      if (k == p) given = &v;
    }
    if (given) {
      inner->set(p, *given);
    } else if (i >= first_default) {
      inner->set(p, eval(*s.defaults[i - first_default], inner));
    } else {
      inner->set(p, Value::undefined("'" + p + "' is undefined"));
    }
  }
  for (const auto& [k, v] : args.kwargs) {
    if (std::find(s.params.begin(), s.params.end(), k) == s.params.end()) {
      throwRuntime(what + " takes no keyword argument '" + k + "'");
    }
  }
  std::string out;
  exec(s.body, inner, out);
  return Value(std::move(out));
}

// ---- expressions --------------------------------------------------------------------------

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  step();
  if (++eval_depth_ > limits_.max_eval_depth) {
    --eval_depth_;
    throwRuntime("expression nesting too deep");
  }
  struct Guard {
    int& d;
    ~Guard() { --d; }
  } guard{eval_depth_};
  return evalInner(e, scope);
}

Value Interpreter::evalInner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::kConst: return e.value;
    case ExprKind::kName: {
      const Value* v = scope->lookup(e.name);
      return v ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kGetAttr: return getAttr(eval(*e.a, scope), e.name);
    case ExprKind::kGetItem: {
      Value obj = eval(*e.a, scope);
      if (e.b->kind == ExprKind::kSlice) return evalSlice(obj, *e.b, scope);
      return getItem(obj, eval(*e.b, scope));
    }
    case ExprKind::kSlice: throwRuntime("slice outside of a subscript");
    case ExprKind::kCall: return evalCall(e, scope);
    case ExprKind::kFilter: {
      Value input = e.a ? eval(*e.a, scope) : Value();
      CallArgs args = evalArgs(e, scope);
      return applyFilter(*this, e.name, input, args);
    }
    case ExprKind::kTest: {
      Value v = eval(*e.a, scope);
      CallArgs args = evalArgs(e, scope);
      return Value(applyTest(*this, e.name, v, args));
    }
    case ExprKind::kUnary: {
      Value v = eval(*e.a, scope);
      if (e.name == "not") return Value(!v.truthy());
      if (v.isUndefined()) failUndefined(v);
      if (!v.isNumber()) throwRuntime("bad operand type for unary " + e.name + ": '" + v.typeName() + "'");
      if (e.name == "+") return v.isFloat() ? v : Value(v.asInt());
      if (v.isFloat()) return Value(-v.asDouble());
      if (v.asInt() == INT64_MIN) throwRuntime("integer overflow");
      return Value(-v.asInt());
    }
    case ExprKind::kBinary: return evalBinary(e, scope);
    case ExprKind::kCompare: return evalCompare(e, scope);
    case ExprKind::kConcat: {
      std::string s;
      for (const auto& a : e.args) {
        s += eval(*a, scope).toStr();
        checkSize(s.size());
      }
      return Value(std::move(s));
    }
    case ExprKind::kCond: {
      if (eval(*e.a, scope).truthy()) return eval(*e.b, scope);
      return e.c ? eval(*e.c, scope) : Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(eval(*a, scope));
      return Value::list(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i], scope);
        if (k.isList() && !k.isTuple()) throwRuntime("unhashable type: 'list'");
        if (k.isDict()) throwRuntime("unhashable type: 'dict'");
        Value v = eval(*e.args[i + 1], scope);
        bool replaced = false;
        for (auto& [ek, ev] : d.mutablePairs()) {
          if (equals(ek, k)) {
            ev = v;
            replaced = true;
          }
        }
        if (!replaced) d.mutablePairs().emplace_back(std::move(k), std::move(v));
      }
      return d;
    }
  }
  return Value();
}

Value Interpreter::evalBinary(const Expr& e, const ScopePtr& scope) {
  Value a = eval(*e.a, scope);
  if (e.name == "and") return a.truthy() ? eval(*e.b, scope) : a;
  if (e.name == "or") return a.truthy() ? a : eval(*e.b, scope);
  Value b = eval(*e.b, scope);
  return binaryOp(e.name, a, b, *this);
}

Value Interpreter::evalCompare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.a, scope);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.args[i], scope);
    const std::string& op = e.ops[i];
    bool ok;
    if (op == "==") {
      ok = equals(left, right);
    } else if (op == "!=") {
      ok = !equals(left, right);
    } else if (op == "in") {
      ok = containsOp(right, left);
    } else if (op == "notin") {
      ok = !containsOp(right, left);
    } else {
      if (left.isUndefined()) failUndefined(left);
      if (right.isUndefined()) failUndefined(right);
      int c;
      try {
        c = compare(left, right);
      } catch (JinjaError& err) {
        size_t at = err.message.find("'<'");
        if (at != std::string::npos) err.message.replace(at, 3, "'" + op + "'");
        throw;
      }
      ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!ok) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

CallArgs Interpreter::evalArgs(const Expr& e, const ScopePtr& scope) {
  CallArgs args;
  args.args.reserve(e.args.size());
  for (const auto& a : e.args) args.args.push_back(eval(*a, scope));
  for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, eval(*v, scope));
  return args;
}

Value Interpreter::evalCall(const Expr& e, const ScopePtr& scope) {
  Value fn = eval(*e.a, scope);
  CallArgs args = evalArgs(e, scope);
  return call(fn, args);
}

Value Interpreter::call(const Value& fn, CallArgs& args) {
  if (fn.isUndefined()) failUndefined(fn);
  if (!fn.isCallable()) throwRuntime("'" + fn.typeName() + "' object is not callable");
  return fn.fn()(*this, args);
}

}  // namespace turbine::model::jinja
