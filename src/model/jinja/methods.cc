// Bound methods of str, dict and list values (`s.split(',')`, `d.items()`), and Python's two
// string formatting operators. Mutating methods are refused, as ImmutableSandboxedEnvironment does.
#include <cmath>
#include <cstdio>

#include "model/jinja/interpreter.h"
#include "model/jinja/strings.h"

namespace turbine::model::jinja {
namespace {

std::optional<std::string> optString(const CallArgs& a, size_t pos, std::string_view name) {
  const Value* v = a.get(pos, name);
  if (!v || v->isNone()) return std::nullopt;
  if (!v->isString()) throwRuntime("expected a string argument, got '" + v->typeName() + "'");
  return v->str();
}
std::string needString(const CallArgs& a, size_t pos, std::string_view name) {
  auto s = optString(a, pos, name);
  if (!s) throwRuntime("missing required argument '" + std::string(name) + "'");
  return *s;
}
int64_t optInt(const CallArgs& a, size_t pos, std::string_view name, int64_t dflt) {
  const Value* v = a.get(pos, name);
  if (!v || v->isNone()) return dflt;
  if (!v->isInt() && !v->isBool()) throwRuntime("'" + v->typeName() + "' object cannot be interpreted as an integer");
  return v->asInt();
}
Value stringList(const std::vector<std::string>& parts) {
  ValueList out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.emplace_back(p);
  return Value::list(std::move(out));
}
bool affix(const std::string& s, const Value& arg, bool prefix) {
  auto test = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg.isString()) return test(arg.str());
  if (arg.isTuple()) {
    for (const auto& v : arg.items()) {
      if (v.isString() && test(v.str())) return true;
    }
    return false;
  }
  throwRuntime(std::string(prefix ? "startswith" : "endswith") + " first arg must be str or a tuple of str, not " +
               arg.typeName());
}
bool allChars(const std::string& s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  for (char32_t c : utf8Decode(s)) {
    if (!pred(c)) return false;
  }
  return true;
}

Value stringMethod(const std::string& s, const std::string& name, Interpreter& in, CallArgs& a) {
  if (name == "startswith" || name == "endswith") {
    const Value* arg = a.get(0, "prefix");
    if (!arg) throwRuntime(name + "() takes at least 1 argument (0 given)");
    return Value(affix(s, *arg, name == "startswith"));
  }
  if (name == "strip") return Value(pyStrip(s, optString(a, 0, "chars"), true, true));
  if (name == "lstrip") return Value(pyStrip(s, optString(a, 0, "chars"), true, false));
  if (name == "rstrip") return Value(pyStrip(s, optString(a, 0, "chars"), false, true));
  if (name == "split") return stringList(pySplit(s, optString(a, 0, "sep"), optInt(a, 1, "maxsplit", -1)));
  if (name == "rsplit") return stringList(pyRsplit(s, optString(a, 0, "sep"), optInt(a, 1, "maxsplit", -1)));
  if (name == "splitlines") {
    const Value* k = a.get(0, "keepends");
    return stringList(pySplitlines(s, k && k->truthy()));
  }
  if (name == "upper") return Value(pyUpper(s));
  if (name == "lower" || name == "casefold") return Value(pyLower(s));
  if (name == "title") return Value(pyTitle(s));
  if (name == "capitalize") return Value(pyCapitalize(s));
  if (name == "swapcase") return Value(pySwapcase(s));
  if (name == "replace") {
    std::string r = pyReplace(s, needString(a, 0, "old"), needString(a, 1, "new"), optInt(a, 2, "count", -1));
    in.checkSize(r.size());
    return Value(std::move(r));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    int64_t at = pyFind(s, needString(a, 0, "sub"), name[0] == 'r');
    if (at < 0 && name.find("index") != std::string::npos) throwRuntime("substring not found");
    return Value(at);
  }
  if (name == "count") return Value(pyCount(s, needString(a, 0, "sub")));
  if (name == "join") {
    const Value* seq = a.get(0, "iterable");
    if (!seq) throwRuntime("join() takes exactly one argument (0 given)");
    std::string out;
    bool first = true;
    for (const auto& v : in.iterate(*seq)) {
      if (!v.isString()) throwRuntime("sequence item: expected str instance, " + v.typeName() + " found");
      if (!first) out += s;
      out += v.str();
      first = false;
      in.checkSize(out.size());
    }
    return Value(std::move(out));
  }
  if (name == "format") return Value(braceFormat(s, a));
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") {
    return Value(allChars(s, [](char32_t c) { return c >= '0' && c <= '9'; }));
  }
  if (name == "isalpha") return Value(allChars(s, isAlpha));
  if (name == "isalnum") return Value(allChars(s, [](char32_t c) { return isAlpha(c) || (c >= '0' && c <= '9'); }));
  if (name == "isspace") return Value(allChars(s, isPySpace));
  if (name == "islower" || name == "isupper") {
    bool upper = name == "isupper", any = false;
    for (char32_t c : utf8Decode(s)) {
      if (!isCased(c)) continue;
      any = true;
      if ((upper ? toUpper(c) : toLower(c)) != c) return Value(false);
    }
    return Value(any);
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    std::string fill = optString(a, 1, "fillchar").value_or(" ");
    return Value(pyCenter(s, optInt(a, 0, "width", 0), name == "ljust", name == "rjust", fill));
  }
  if (name == "zfill") {
    int64_t width = optInt(a, 0, "width", 0), len = static_cast<int64_t>(utf8Decode(s).size());
    if (len >= width) return Value(s);
    size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    return Value(s.substr(0, sign) + std::string(static_cast<size_t>(width - len), '0') + s.substr(sign));
  }
  if (name == "partition" || name == "rpartition") {
    std::string sep = needString(a, 0, "sep");
    size_t at = name[0] == 'r' ? s.rfind(sep) : s.find(sep);
    if (at == std::string::npos) {
      return name[0] == 'r' ? Value::list({Value(""), Value(""), Value(s)}, true)
                            : Value::list({Value(s), Value(""), Value("")}, true);
    }
    return Value::list({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))}, true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    std::string x = needString(a, 0, name == "removeprefix" ? "prefix" : "suffix");
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return Value(s.substr(0, s.size() - x.size()));
    }
    return Value(s);
  }
  throwRuntime("unknown str method " + name);
}

const char* const kStringMethods[] = {
    "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "upper", "lower",
    "casefold", "title", "capitalize", "swapcase", "replace", "find", "rfind", "index", "rindex", "count", "join",
    "format", "isdigit", "isnumeric", "isdecimal", "isalpha", "isalnum", "isspace", "islower", "isupper", "center",
    "ljust", "rjust", "zfill", "partition", "rpartition", "removeprefix", "removesuffix"};

bool isOneOf(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (name == n) return true;
  }
  return false;
}

Value dictMethod(const Value& d, const std::string& name, CallArgs& a) {
  if (name == "get") {
    const Value* key = a.get(0, "key");
    if (!key) throwRuntime("get expected at least 1 argument, got 0");
    const Value* v = d.find(*key);
    return v ? *v : a.getOr(1, "default", Value::none());
  }
  if (name == "items") {
    ValueList out;
    for (const auto& [k, v] : d.pairs()) out.push_back(Value::list({k, v}, true));
    return Value::list(std::move(out));
  }
  if (name == "keys" || name == "values") {
    ValueList out;
    for (const auto& [k, v] : d.pairs()) out.push_back(name == "keys" ? k : v);
    return Value::list(std::move(out));
  }
  return Value::dict(d.pairs());  // copy
}

Value listMethod(const Value& l, const std::string& name, CallArgs& a) {
  const Value* x = a.get(0, "value");
  if (name == "copy") return Value::list(l.items(), l.isTuple());
  if (!x) throwRuntime(name + "() takes exactly one argument (0 given)");
  int64_t count = 0;
  for (size_t i = 0; i < l.items().size(); ++i) {
    if (!equals(l.items()[i], *x)) continue;
    if (name == "index") return Value(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") throwRuntime(x->repr() + " is not in list");
  return Value(count);
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + obj.typeName() + "' object is unsafe.");
}

}  // namespace

Value boundMethod(const Value& obj, const std::string& name) {
  if (obj.isString()) {
    for (const char* m : kStringMethods) {
      if (name == m) {
        std::string s = obj.str();
        return Value::callable([s, name](Interpreter& in, CallArgs& a) { return stringMethod(s, name, in, a); }, name);
      }
    }
    return Value::undefined();
  }
  if (obj.isDict()) {
    if (isOneOf(name, {"get", "items", "keys", "values", "copy"})) {
      return Value::callable([obj, name](Interpreter&, CallArgs& a) { return dictMethod(obj, name, a); }, name);
    }
    if (isOneOf(name, {"pop", "popitem", "setdefault", "update", "clear"})) return unsafe(obj, name);
    return Value::undefined();
  }
  if (obj.isList()) {
    if (isOneOf(name, {"count", "index"}) || (name == "copy" && !obj.isTuple())) {
      return Value::callable([obj, name](Interpreter&, CallArgs& a) { return listMethod(obj, name, a); }, name);
    }
    if (!obj.isTuple() && isOneOf(name, {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"})) {
      return unsafe(obj, name);
    }
  }
  return Value::undefined();
}

// ---- formatting ---------------------------------------------------------------------------

namespace {

std::string formatOne(char conv, const std::string& flags, int width, int precision, const Value& v) {
  std::string body;
  if (conv == 's' || conv == 'r' || conv == 'a') {
    body = conv == 's' ? v.toStr() : v.repr();
    if (precision >= 0) body = utf8Encode(utf8Decode(body).substr(0, static_cast<size_t>(precision)));
  } else {
    if (!v.isNumber()) throwRuntime(std::string("%") + conv + " format: a real number is required, not " + v.typeName());
    std::string spec = "%" + flags;
    if (width > 0) spec += std::to_string(std::min(width, 400));
    if (precision >= 0) spec += "." + std::to_string(precision);
    char buf[512];
    if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      int64_t iv = v.isFloat() ? static_cast<int64_t>(std::trunc(v.asDouble())) : v.asInt();
      spec += std::string("ll") + (conv == 'i' ? 'd' : conv);
      std::snprintf(buf, sizeof buf, spec.c_str(), static_cast<long long>(iv));
    } else if (conv == 'c') {
      std::string c;
      appendUtf8(c, static_cast<char32_t>(v.asInt()));
      body = c;
      buf[0] = 0;
    } else {
      spec += conv;
      std::snprintf(buf, sizeof buf, spec.c_str(), v.asDouble());
    }
    if (conv != 'c') body = buf;
  }
  int64_t len = static_cast<int64_t>(utf8Decode(body).size());
  bool padded_by_printf = conv != 's' && conv != 'r' && conv != 'a' && conv != 'c';
  if (!padded_by_printf && width > len) {
    std::string pad(static_cast<size_t>(width - len), ' ');
    body = flags.find('-') != std::string::npos ? body + pad : pad + body;
  }
  return body;
}

}  // namespace

std::string percentFormat(const std::string& fmt, const Value& args) {
  ValueList positional = args.isTuple() ? args.items() : ValueList{args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throwRuntime("incomplete format");
    const Value* mapped = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos || !args.isDict()) throwRuntime("format requires a mapping");
      mapped = args.find(fmt.substr(i + 1, close - i - 1));
      if (!mapped) throwRuntime("'" + fmt.substr(i + 1, close - i - 1) + "'");
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) flags += fmt[i++];
    int width = 0, precision = -1;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width = width * 10 + (fmt[i++] - '0');
    if (i < fmt.size() && fmt[i] == '.') {
      precision = 0;
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) precision = precision * 10 + (fmt[i++] - '0');
    }
    if (i >= fmt.size()) throwRuntime("incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (std::string_view("sradicxXoeEfFgG").find(conv) == std::string_view::npos) {
      throwRuntime(std::string("unsupported format character '") + conv + "'");
    }
    if (!mapped) {
      if (next >= positional.size()) throwRuntime("not enough arguments for format string");
      mapped = &positional[next++];
    }
    out += formatOne(conv, flags, width, std::min(precision, 400), *mapped);
  }
  if (args.isTuple() && next < positional.size()) throwRuntime("not all arguments converted during string formatting");
  return out;
}

std::string braceFormat(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) throwRuntime("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!") != std::string::npos) throwRuntime("format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < args.args.size() ? &args.args[auto_index++] : nullptr;
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t idx = std::stoul(field);
      v = idx < args.args.size() ? &args.args[idx] : nullptr;
    } else {
      for (const auto& [k, val] : args.kwargs) {
        if (k == field) v = &val;
      }
    }
    if (!v) throwRuntime("Replacement index " + field + " out of range for positional args tuple");
    out += v->toStr();
    i = close;
  }
  return out;
}

}  // namespace turbine::model::jinja
