#include "model/jinja/template.h"

#include <chrono>

#include "model/jinja/lexer.h"
#include "model/jinja/parser.h"

namespace turbine::model::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value rangeFn(Interpreter&, CallArgs& a) {
  if (!a.kwargs.empty()) throwRuntime("range() takes no keyword arguments");
  std::vector<int64_t> n;
  for (const auto& v : a.args) {
    if (!v.isInt() && !v.isBool()) throwRuntime("'" + v.typeName() + "' object cannot be interpreted as an integer");
    n.push_back(v.asInt());
  }
  if (n.empty() || n.size() > 3) throwRuntime("range expected 1 to 3 arguments, got " + std::to_string(n.size()));
  int64_t start = n.size() == 1 ? 0 : n[0], stop = n.size() == 1 ? n[0] : n[1], step = n.size() == 3 ? n[2] : 1;
  if (step == 0) throwRuntime("range() arg 3 must not be zero");
  long double count = step > 0 ? (static_cast<long double>(stop) - start + step - 1) / step
                               : (static_cast<long double>(start) - stop - step - 1) / -step;
  if (count > kMaxRange) {
    throwRuntime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.emplace_back(i);
  return Value::list(std::move(out));
}

// dict(*args, **kwargs) as Python builds it; used by dict() and namespace().
ValuePairs dictArgs(const CallArgs& a) {
  Value d = Value::nameSpace();
  if (a.args.size() > 1) throwRuntime("expected at most 1 positional argument, got " + std::to_string(a.args.size()));
  if (!a.args.empty()) {
    const Value& src = a.args[0];
    if (src.isDict() || src.isNamespace()) {
      for (const auto& [k, v] : src.pairs()) d.set(k, v);
    } else if (src.isList()) {
      for (const auto& item : src.items()) {
        if (!item.isList() || item.items().size() != 2) throwRuntime("dictionary update sequence element has wrong length");
        d.set(item.items()[0], item.items()[1]);
      }
    } else {
      throwRuntime("'" + src.typeName() + "' object is not iterable");
    }
  }
  for (const auto& [k, v] : a.kwargs) d.set(Value(k), v);
  return d.pairs();
}

std::tm localNow() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

Value strftimeFn(const std::function<std::tm()>& now, CallArgs& a) {
  const Value* fmt = a.get(0, "format");
  if (!fmt || !fmt->isString()) throwRuntime("strftime_now() needs a format string");
  if (fmt->str().empty()) return Value("");
  std::tm tm = now ? now() : localNow();
  for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
    std::string buf(cap, '\0');
    size_t n = std::strftime(buf.data(), cap, fmt->str().c_str(), &tm);
    if (n > 0) {
      buf.resize(n);
      return Value(std::move(buf));
    }
  }
  return Value("");  // the format produced nothing
}

ScopePtr makeGlobals(const RenderOptions& options) {
  auto g = std::make_shared<Scope>(nullptr);
  g->set("range", Value::callable(rangeFn, "range"));
  g->set("dict", Value::callable([](Interpreter&, CallArgs& a) { return Value::dict(dictArgs(a)); }, "dict"));
  g->set("namespace",
         Value::callable([](Interpreter&, CallArgs& a) { return Value::nameSpace(dictArgs(a)); }, "namespace"));
  g->set("raise_exception", Value::callable(
                                [](Interpreter&, CallArgs& a) -> Value {
                                  const Value* m = a.get(0, "message");
                                  throw JinjaError{JinjaError::Type::kRaise, m ? m->toStr() : "", 0};
                                },
                                "raise_exception"));
  std::function<std::tm()> now = options.now;
  g->set("strftime_now",
         Value::callable([now](Interpreter&, CallArgs& a) { return strftimeFn(now, a); }, "strftime_now"));
  return g;
}

}  // namespace

Result<Template> Template::parse(const std::string& source) {
  try {
    TURBINE_ASSIGN_OR_RETURN(std::vector<Token> tokens, jinja::tokenize(source));
    TURBINE_ASSIGN_OR_RETURN(StmtList body, jinja::parse(tokens));
    return Template(std::make_shared<const StmtList>(std::move(body)));
  } catch (const std::exception& e) {  // a library exception on odd input: still a bad template
    return invalidArgument(std::string("template could not be parsed: ") + e.what());
  }
}

Result<std::string> Template::render(const Value& context, const RenderOptions& options) const {
  if (!context.isDict()) return invalidArgument("template context must be a mapping");
  try {
    ScopePtr globals = makeGlobals(options);
    auto top = std::make_shared<Scope>(globals);
    for (const auto& [k, v] : context.pairs()) {
      if (k.isString()) top->set(k.str(), v);
    }
    Interpreter interpreter(options.limits);
    return interpreter.render(*body_, top);
  } catch (const JinjaError& e) {
    if (e.type == JinjaError::Type::kRaise) return invalidArgument(e.message);
    return invalidArgument("line " + std::to_string(e.line) + ": " + e.message);
  } catch (const std::exception& e) {
    return invalidArgument(std::string("template rendering failed: ") + e.what());
  }
}

}  // namespace turbine::model::jinja
