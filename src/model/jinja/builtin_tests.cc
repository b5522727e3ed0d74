// The built-in tests of Jinja2 3.1 (`x is defined`, `x is string`, `x is equalto y`, ...),
// with Python's type model: bool is a number, a dict is iterable and a sequence, Undefined is
// iterable and a sequence.
#include "model/jinja/interpreter.h"
#include "model/jinja/strings.h"

namespace turbine::model::jinja {
namespace {

const Value& arg0(const CallArgs& a, const std::string& test) {
  if (a.args.empty()) {
    if (!a.kwargs.empty()) return a.kwargs[0].second;
    throwRuntime("test '" + test + "' needs an argument");
  }
  return a.args[0];
}

bool caseTest(const Value& v, bool upper) {
  if (!v.isString()) return false;
  bool any = false;
  for (char32_t c : utf8Decode(v.str())) {
    if (!isCased(c)) continue;
    any = true;
    if ((upper ? toUpper(c) : toLower(c)) != c) return false;
  }
  return any;
}

int64_t needInt(const Value& v) {
  if (!v.isInt() && !v.isBool()) throwRuntime("expected an integer, got '" + v.typeName() + "'");
  return v.asInt();
}

const char* const kTests[] = {"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped",
                              "even", "false", "filter", "float", "ge", ">=", "gt", "greaterthan", ">", "in",
                              "integer", "iterable", "le", "<=", "lower", "lt", "lessthan", "<", "mapping", "ne",
                              "!=", "none", "number", "odd", "sameas", "sequence", "string", "test", "true",
                              "undefined", "upper"};

}  // namespace

bool isKnownTest(const std::string& name) {
  for (const char* t : kTests) {
    if (name == t) return true;
  }
  return false;
}

bool applyTest(Interpreter&, const std::string& name, const Value& v, CallArgs& a) {
  if (!isKnownTest(name)) throwRuntime("No test named '" + name + "'.");
  if (name == "defined") return !v.isUndefined();
  if (name == "undefined") return v.isUndefined();
  if (name == "none") return v.isNone();
  if (name == "string") return v.isString();
  if (name == "number") return v.isNumber();
  if (name == "integer") return v.isInt();
  if (name == "float") return v.isFloat();
  if (name == "boolean") return v.isBool();
  if (name == "true") return v.isBool() && v.asBool();
  if (name == "false") return v.isBool() && !v.asBool();
  if (name == "mapping") return v.isDict();
  if (name == "iterable") return v.isString() || v.isList() || v.isDict() || v.isUndefined();
  if (name == "sequence") return v.isString() || v.isList() || v.isDict() || v.isUndefined();
  if (name == "callable") return v.isCallable();
  if (name == "escaped") return false;
  if (name == "lower") return caseTest(v, false);
  if (name == "upper") return caseTest(v, true);
  if (name == "odd" || name == "even") {
    if (v.isUndefined()) failUndefined(v);
    int64_t m = needInt(v) % 2;
    return name == "odd" ? m != 0 : m == 0;
  }
  if (name == "divisibleby") {
    int64_t d = needInt(arg0(a, name));
    if (d == 0) throwRuntime("integer division or modulo by zero");
    return needInt(v) % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg0(a, name));
  if (name == "ne" || name == "!=") return !equals(v, arg0(a, name));
  if (name == "sameas") return v.identical(arg0(a, name));
  if (name == "in") return containsOp(arg0(a, name), v);
  if (name == "filter" || name == "test") {
    static const char* const kFilterNames[] = {
        "abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
        "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
        "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};
    if (!v.isString()) return false;
    if (name == "test") return isKnownTest(v.str());
    for (const char* f : kFilterNames) {
      if (v.str() == f) return true;
    }
    return false;
  }
  const Value& other = arg0(a, name);
  if (v.isUndefined()) failUndefined(v);
  if (other.isUndefined()) failUndefined(other);
  int c = compare(v, other);
  if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
  if (name == "le" || name == "<=") return c <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
  if (name == "ge" || name == ">=") return c >= 0;
  throwRuntime("No test named '" + name + "'.");
}

}  // namespace turbine::model::jinja
