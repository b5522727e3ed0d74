// Attribute / item access, iteration, slicing and the arithmetic operators, with Python's and
// the Jinja2 sandbox's semantics (a failed lookup gives Undefined; using it is the error).
#include <cmath>

#include "model/jinja/interpreter.h"

namespace turbine::model::jinja {
namespace {

std::string objectTypeRepr(const Value& obj) {
  if (obj.isNone()) return "None";
  return obj.typeName() + " object";
}

Value missingAttr(const Value& obj, const Value& name) {
  if (name.isString()) return Value::undefined("'" + objectTypeRepr(obj) + "' has no attribute '" + name.str() + "'");
  return Value::undefined("'" + objectTypeRepr(obj) + "' has no element " + name.repr());
}

// Python slice.indices(n) followed by the index walk.
std::vector<int64_t> sliceIndices(int64_t n, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto asIndex = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.isNone() || v.isUndefined()) {
      if (v.isUndefined() && !v.str().empty()) failUndefined(v);
      return std::nullopt;
    }
    if (!v.isInt() && !v.isBool()) throwRuntime(std::string("slice ") + what + " indices must be integers or None");
    return v.asInt();
  };
  std::optional<int64_t> start = asIndex(start_v, "start"), stop = asIndex(stop_v, "stop");
  int64_t step = asIndex(step_v, "step").value_or(1);
  if (step == 0) throwRuntime("slice step cannot be zero");
  int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? n - 1 : n;
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  int64_t b = clamp(start, step < 0 ? upper : lower);
  int64_t e = clamp(stop, step < 0 ? lower : upper);
  std::vector<int64_t> out;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) out.push_back(i);
  return out;
}

bool addOverflows(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }

Value repeat(const Value& seq, int64_t times, const Interpreter& in) {
  if (times < 0) times = 0;
  if (seq.isString()) {
    in.checkSize(seq.str().size() * static_cast<size_t>(times));
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.str();
    return Value(std::move(out));
  }
  in.checkSize(seq.items().size() * static_cast<size_t>(times));
  ValueList out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.isTuple());
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throwRuntime("unsupported operand type(s) for " + op + ": '" + a.typeName() + "' and '" + b.typeName() + "'");
}

Value arith(const std::string& op, const Value& a, const Value& b) {
  bool fl = a.isFloat() || b.isFloat();
  double x = a.asDouble(), y = b.asDouble();
  int64_t i = a.asInt(), j = b.asInt(), r = 0;
  if (op == "+") {
    if (fl) return Value(x + y);
    if (addOverflows(i, j, &r)) throwRuntime("integer overflow");
    return Value(r);
  }
  if (op == "-") {
    if (fl) return Value(x - y);
    if (__builtin_sub_overflow(i, j, &r)) throwRuntime("integer overflow");
    return Value(r);
  }
  if (op == "*") {
    if (fl) return Value(x * y);
    if (__builtin_mul_overflow(i, j, &r)) throwRuntime("integer overflow");
    return Value(r);
  }
  if (op == "/") {
    if (y == 0) throwRuntime(fl ? "float division by zero" : "division by zero");
    return Value(x / y);
  }
  if (op == "//" || op == "%") {
    if (fl) {
      if (y == 0) throwRuntime(op == "%" ? "float modulo" : "float floor division by zero");
      // CPython's float_divmod.
      double m = std::fmod(x, y);
      double div = (x - m) / y;
      if (m != 0) {
        if ((y < 0) != (m < 0)) {
          m += y;
          div -= 1.0;
        }
      } else {
        m = std::copysign(0.0, y);
      }
      double floordiv;
      if (div != 0) {
        floordiv = std::floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
      } else {
        floordiv = std::copysign(0.0, x / y);
      }
      return op == "%" ? Value(m) : Value(floordiv);
    }
    if (j == 0) throwRuntime("integer division or modulo by zero");
    if (i == INT64_MIN && j == -1) throwRuntime("integer overflow");
    int64_t q = i / j, m = i % j;
    if (m != 0 && ((m < 0) != (j < 0))) {
      m += j;
      --q;
    }
    return op == "%" ? Value(m) : Value(q);
  }
  // "**"
  if (!fl && j >= 0) {
    int64_t acc = 1;
    for (int64_t k = 0; k < j; ++k) {
      if (__builtin_mul_overflow(acc, i, &acc)) throwRuntime("integer overflow");
      if (acc == 0 || acc == 1) break;
    }
    if (acc == 1 && i == -1) acc = (j % 2) ? -1 : 1;
    return Value(acc);
  }
  if (x == 0 && y < 0) throwRuntime("0.0 cannot be raised to a negative power");
  return Value(std::pow(x, y));
}

}  // namespace

Value Interpreter::getAttr(const Value& obj, const std::string& name) {
  if (obj.isUndefined()) failUndefined(obj);
  if (obj.isDict() || obj.isString() || obj.isList()) {
    Value m = boundMethod(obj, name);
    if (!m.isUndefined() || !m.str().empty()) return m;
  }
  if (obj.isDict() || obj.isNamespace()) {
    if (const Value* v = obj.find(name)) return *v;
  }
  return missingAttr(obj, Value(name));
}

Value Interpreter::getItem(const Value& obj, const Value& key) {
  if (obj.isUndefined()) failUndefined(obj);
  if (obj.isDict()) {
    if (const Value* v = obj.find(key)) return *v;
  } else if ((obj.isList() || obj.isString()) && (key.isInt() || key.isBool())) {
    int64_t n = obj.length(), i = key.asInt();
    if (i < 0) i += n;
    if (i >= 0 && i < n) {
      if (obj.isList()) return obj.items()[static_cast<size_t>(i)];
      std::u32string cps = utf8Decode(obj.str());
      return Value(utf8Encode(std::u32string(1, cps[static_cast<size_t>(i)])));
    }
  }
  if (key.isString() && (obj.isDict() || obj.isString() || obj.isList())) {
    Value m = boundMethod(obj, key.str());
    if (!m.isUndefined() || !m.str().empty()) return m;
  }
  return missingAttr(obj, key);
}

Value Interpreter::evalSlice(const Value& obj, const Expr& slice, const ScopePtr& scope) {
  Value start = slice.a ? eval(*slice.a, scope) : Value::none();
  Value stop = slice.b ? eval(*slice.b, scope) : Value::none();
  Value stepv = slice.c ? eval(*slice.c, scope) : Value::none();
  if (obj.isUndefined()) failUndefined(obj);
  if (obj.isList()) {
    ValueList out;
    for (int64_t i : sliceIndices(obj.length(), start, stop, stepv)) out.push_back(obj.items()[static_cast<size_t>(i)]);
    return Value::list(std::move(out), obj.isTuple());
  }
  if (obj.isString()) {
    std::u32string cps = utf8Decode(obj.str());
    std::u32string out;
    for (int64_t i : sliceIndices(static_cast<int64_t>(cps.size()), start, stop, stepv)) out += cps[static_cast<size_t>(i)];
    return Value(utf8Encode(out));
  }
  return Value::undefined("'" + objectTypeRepr(obj) + "' is not subscriptable");
}

ValueList Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return {};
    case Kind::kList: return v.items();
    case Kind::kDict: {
      ValueList keys;
      for (const auto& [k, _] : v.pairs()) keys.push_back(k);
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      for (char32_t c : utf8Decode(v.str())) chars.push_back(Value(utf8Encode(std::u32string(1, c))));
      return chars;
    }
    default: throwRuntime("'" + v.typeName() + "' object is not iterable");
  }
}

Value binaryOp(const std::string& op, const Value& a, const Value& b, const Interpreter& in) {
  if (a.isUndefined()) failUndefined(a);
  if (b.isUndefined()) failUndefined(b);
  if (a.isNumber() && b.isNumber()) return arith(op, a, b);
  if (op == "+") {
    if (a.isString() && b.isString()) {
      in.checkSize(a.str().size() + b.str().size());
      return Value(a.str() + b.str());
    }
    if (a.isList() && b.isList() && a.isTuple() == b.isTuple()) {
      ValueList out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return Value::list(std::move(out), a.isTuple());
    }
    if (a.isString() || a.isList()) {
      throwRuntime("can only concatenate " + a.typeName() + " (not \"" + b.typeName() + "\") to " + a.typeName());
    }
    unsupported(op, a, b);
  }
  if (op == "*") {
    if ((a.isString() || a.isList()) && (b.isInt() || b.isBool())) return repeat(a, b.asInt(), in);
    if ((b.isString() || b.isList()) && (a.isInt() || a.isBool())) return repeat(b, a.asInt(), in);
    throwRuntime("can't multiply sequence by non-int of type '" + (a.isNumber() ? a : b).typeName() + "'");
  }
  if (op == "%" && a.isString()) return Value(percentFormat(a.str(), b));
  unsupported(op == "**" ? "** or pow()" : op, a, b);
}

bool containsOp(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined: return false;
    case Kind::kString:
      if (!item.isString()) throwRuntime("'in <string>' requires string as left operand, not " + item.typeName());
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList:
      for (const auto& v : container.items()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Kind::kDict: return container.find(item) != nullptr;
    default: throwRuntime("argument of type '" + container.typeName() + "' is not iterable");
  }
}

}  // namespace turbine::model::jinja
