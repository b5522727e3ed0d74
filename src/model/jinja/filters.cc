// The built-in filters of Jinja2 3.1 that chat templates use, plus `tojson` as Hugging Face
// transformers defines it: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False) with those positional parameters in that order.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "model/jinja/interpreter.h"
#include "model/jinja/strings.h"

namespace turbine::model::jinja {
namespace {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);

// Jinja's make_attrgetter: "a.b.0" walks getitem with integer parts.
Value getAttribute(Interpreter& in, const Value& v, const Value& attribute) {
  if (!attribute.isString()) return in.getItem(v, attribute);
  Value cur = v;
  const std::string& path = attribute.str();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = numeric ? in.getItem(cur, Value(static_cast<int64_t>(std::stoll(part)))) : in.getItem(cur, Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value lowerIfString(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.isString()) ? Value(pyLower(v.str())) : v;
}

std::string softStr(const Value& v) { return v.toStr(); }

Value fDefault(Interpreter&, const Value& v, CallArgs& a) {
  Value dflt = a.getOr(0, "default_value", Value(""));
  const Value* boolean = a.get(1, "boolean");
  if (v.isUndefined() || (boolean && boolean->truthy() && !v.truthy())) return dflt;
  return v;
}

Value fLength(Interpreter&, const Value& v, CallArgs&) { return Value(v.length()); }

Value fTrim(Interpreter&, const Value& v, CallArgs& a) {
  const Value* chars = a.get(0, "chars");
  std::optional<std::string> set;
  if (chars && !chars->isNone()) set = chars->toStr();
  return Value(pyStrip(softStr(v), set, true, true));
}

Value fUpper(Interpreter&, const Value& v, CallArgs&) { return Value(pyUpper(softStr(v))); }
Value fLower(Interpreter&, const Value& v, CallArgs&) { return Value(pyLower(softStr(v))); }
Value fCapitalize(Interpreter&, const Value& v, CallArgs&) { return Value(pyCapitalize(softStr(v))); }

// Jinja's do_title: split on runs of [-\s({[<], upper-case each piece's first character.
Value fTitle(Interpreter&, const Value& v, CallArgs&) {
  std::u32string cps = utf8Decode(softStr(v));
  auto isSep = [](char32_t c) { return isPySpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  std::u32string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    bool sep = isSep(cps[i]);
    while (j < cps.size() && isSep(cps[j]) == sep) ++j;
    for (size_t k = i; k < j; ++k) out += k == i ? toUpper(cps[k]) : toLower(cps[k]);
    i = j;
  }
  return Value(utf8Encode(out));
}

Value fReplace(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* old = a.get(0, "old");
  const Value* with = a.get(1, "new");
  if (!old || !with) throwRuntime("replace filter needs 'old' and 'new'");
  const Value* count = a.get(2, "count");
  std::string r = pyReplace(softStr(v), old->toStr(), with->toStr(), count && !count->isNone() ? count->asInt() : -1);
  in.checkSize(r.size());
  return Value(std::move(r));
}

Value fString(Interpreter&, const Value& v, CallArgs&) { return v.isString() ? v : Value(v.toStr()); }

Value fList(Interpreter& in, const Value& v, CallArgs&) { return Value::list(in.iterate(v)); }

Value fItems(Interpreter&, const Value& v, CallArgs&) {
  if (v.isUndefined()) return Value::list({});
  if (!v.isDict()) throwRuntime("Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, val] : v.pairs()) out.push_back(Value::list({k, val}, true));
  return Value::list(std::move(out));
}

Value fFirst(Interpreter& in, const Value& v, CallArgs&) {
  ValueList items = in.iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value fLast(Interpreter& in, const Value& v, CallArgs&) {
  ValueList items = in.iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value fJoin(Interpreter& in, const Value& v, CallArgs& a) {
  std::string sep = a.getOr(0, "d", Value("")).toStr();
  const Value* attribute = a.get(1, "attribute");
  std::string out;
  bool first = true;
  for (const auto& item : in.iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += (attribute && !attribute->isNone() ? getAttribute(in, item, *attribute) : item).toStr();
    in.checkSize(out.size());
  }
  return Value(std::move(out));
}

Value fReverse(Interpreter& in, const Value& v, CallArgs&) {
  if (v.isString()) {
    std::u32string cps = utf8Decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return Value(utf8Encode(cps));
  }
  ValueList items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value fInt(Interpreter&, const Value& v, CallArgs& a) {
  Value dflt = a.getOr(0, "default", Value(0));
  if (v.isNumber()) {
    if (!v.isFloat()) return Value(v.asInt());
    double d = v.asDouble();
    if (!std::isfinite(d)) return dflt;
    return Value(static_cast<int64_t>(std::trunc(d)));
  }
  if (v.isString()) {
    std::string s = pyStrip(v.str(), std::nullopt, true, true);
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && *end == 0 && errno == 0) return Value(static_cast<int64_t>(i));
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == 0 && std::isfinite(d)) return Value(static_cast<int64_t>(std::trunc(d)));
  }
  return dflt;
}

Value fFloat(Interpreter&, const Value& v, CallArgs& a) {
  Value dflt = a.getOr(0, "default", Value(0.0));
  if (v.isNumber()) return Value(v.asDouble());
  if (v.isString()) {
    std::string s = pyStrip(v.str(), std::nullopt, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == 0) return Value(d);
  }
  return dflt;
}

Value fAbs(Interpreter&, const Value& v, CallArgs&) {
  if (!v.isNumber()) throwRuntime("bad operand type for abs(): '" + v.typeName() + "'");
  if (v.isFloat()) return Value(std::fabs(v.asDouble()));
  if (v.asInt() == INT64_MIN) throwRuntime("integer overflow");
  return Value(static_cast<int64_t>(v.asInt() < 0 ? -v.asInt() : v.asInt()));
}

Value fRound(Interpreter&, const Value& v, CallArgs& a) {
  int64_t precision = a.getOr(0, "precision", Value(0)).asInt();
  std::string method = a.getOr(1, "method", Value("common")).toStr();
  if (!v.isNumber()) throwRuntime("type " + v.typeName() + " doesn't define __round__ method");
  double x = v.asDouble();
  if (method == "ceil" || method == "floor") {
    double p = std::pow(10.0, static_cast<double>(precision));
    return Value((method == "ceil" ? std::ceil(x * p) : std::floor(x * p)) / p);
  }
  if (method != "common") throwRuntime("method must be common, ceil or floor");
  if (!v.isFloat()) return Value(v.asInt());  // round(int, n) stays an int
  if (precision <= 0 || !std::isfinite(x)) {
    double p = std::pow(10.0, static_cast<double>(-precision));
    return Value(std::nearbyint(x / p) * p);
  }
  // Correctly rounded decimal (glibc printf rounds the exact binary value, as Python does).
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<int64_t>(precision, 300)), x);
  return Value(std::strtod(buf, nullptr));
}

Value fTojson(Interpreter&, const Value& v, CallArgs& a) {
  JsonDumpOptions o;
  o.ensure_ascii = a.getOr(0, "ensure_ascii", Value(false)).truthy();
  Value indent = a.getOr(1, "indent", Value::none());
  if (indent.isString()) {
    o.indent_is_string = true;
    o.indent_str = indent.str();
  } else if (indent.isInt() || indent.isBool()) {
    o.indent = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(indent.asInt(), 1000)));
  } else if (!indent.isNone()) {
    throwRuntime("indent must be an int or a string");
  }
  if (o.indent >= 0 || o.indent_is_string) o.item_sep = ",";
  Value seps = a.getOr(2, "separators", Value::none());
  if (!seps.isNone()) {
    if (!seps.isList() || seps.items().size() != 2) throwRuntime("separators must be a (item, key) pair");
    o.item_sep = seps.items()[0].toStr();
    o.key_sep = seps.items()[1].toStr();
  }
  o.sort_keys = a.getOr(3, "sort_keys", Value(false)).truthy();
  return Value(jsonDumps(v, o));
}

Value sortImpl(Interpreter& in, ValueList items, bool reverse, bool case_sensitive, const Value* attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) {
    Value key = attribute && !attribute->isNone() ? getAttribute(in, item, *attribute) : item;
    keyed.emplace_back(lowerIfString(key, case_sensitive), std::move(item));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
    return reverse ? compare(y.first, x.first) < 0 : compare(x.first, y.first) < 0;
  });
  ValueList out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return Value::list(std::move(out));
}

Value fSort(Interpreter& in, const Value& v, CallArgs& a) {
  return sortImpl(in, in.iterate(v), a.getOr(0, "reverse", Value(false)).truthy(),
                  a.getOr(1, "case_sensitive", Value(false)).truthy(), a.get(2, "attribute"));
}

Value fDictsort(Interpreter&, const Value& v, CallArgs& a) {
  if (!v.isDict()) throwRuntime("dictsort filter needs a mapping");
  bool case_sensitive = a.getOr(0, "case_sensitive", Value(false)).truthy();
  std::string by = a.getOr(1, "by", Value("key")).toStr();
  bool reverse = a.getOr(2, "reverse", Value(false)).truthy();
  if (by != "key" && by != "value") throwRuntime("You can only sort by either \"key\" or \"value\"");
  ValuePairs pairs = v.pairs();
  std::stable_sort(pairs.begin(), pairs.end(), [&](const auto& x, const auto& y) {
    const Value& kx = by == "key" ? x.first : x.second;
    const Value& ky = by == "key" ? y.first : y.second;
    int c = compare(lowerIfString(kx, case_sensitive), lowerIfString(ky, case_sensitive));
    return reverse ? c > 0 : c < 0;
  });
  ValueList out;
  for (auto& [k, val] : pairs) out.push_back(Value::list({k, val}, true));
  return Value::list(std::move(out));
}

Value fUnique(Interpreter& in, const Value& v, CallArgs& a) {
  bool case_sensitive = a.getOr(0, "case_sensitive", Value(false)).truthy();
  const Value* attribute = a.get(1, "attribute");
  ValueList out, seen;
  for (auto& item : in.iterate(v)) {
    Value key = lowerIfString(attribute && !attribute->isNone() ? getAttribute(in, item, *attribute) : item, case_sensitive);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value minMax(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  bool case_sensitive = a.getOr(0, "case_sensitive", Value(false)).truthy();
  const Value* attribute = a.get(1, "attribute");
  ValueList items = in.iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  const Value* best = nullptr;
  Value best_key;
  for (const auto& item : items) {
    Value key = lowerIfString(attribute && !attribute->isNone() ? getAttribute(in, item, *attribute) : item, case_sensitive);
    if (!best || (want_max ? compare(key, best_key) > 0 : compare(key, best_key) < 0)) {
      best = &item;
      best_key = key;
    }
  }
  return *best;
}
Value fMin(Interpreter& in, const Value& v, CallArgs& a) { return minMax(in, v, a, false); }
Value fMax(Interpreter& in, const Value& v, CallArgs& a) { return minMax(in, v, a, true); }

Value fSum(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* attribute = a.get(0, "attribute");
  Value total = a.getOr(1, "start", Value(0));
  for (const auto& item : in.iterate(v)) {
    total = binaryOp("+", total, attribute && !attribute->isNone() ? getAttribute(in, item, *attribute) : item, in);
  }
  return total;
}

// map(filter_name, *args) or map(attribute=..., default=...).
Value fMap(Interpreter& in, const Value& v, CallArgs& a) {
  ValueList out;
  const Value* attribute = nullptr;
  for (const auto& [k, val] : a.kwargs) {
    if (k == "attribute") attribute = &val;
  }
  if (attribute) {
    const Value* dflt = nullptr;
    for (const auto& [k, val] : a.kwargs) {
      if (k == "default") dflt = &val;
    }
    for (const auto& item : in.iterate(v)) {
      Value x = getAttribute(in, item, *attribute);
      out.push_back(x.isUndefined() && dflt ? *dflt : x);
    }
    return Value::list(std::move(out));
  }
  if (a.args.empty()) throwRuntime("map requires a filter argument");
  std::string name = a.args[0].toStr();
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (const auto& item : in.iterate(v)) {
    CallArgs copy = rest;
    out.push_back(applyFilter(in, name, item, copy));
  }
  return Value::list(std::move(out));
}

// select / reject / selectattr / rejectattr.
Value selectImpl(Interpreter& in, const Value& v, CallArgs& a, bool by_attr, bool keep_if) {
  size_t first = by_attr ? 1 : 0;
  if (by_attr && a.args.empty()) throwRuntime("Missing parameter for attribute name");
  std::string test = a.args.size() > first ? a.args[first].toStr() : "";
  CallArgs rest;
  if (a.args.size() > first + 1) rest.args.assign(a.args.begin() + static_cast<long>(first) + 1, a.args.end());
  rest.kwargs = a.kwargs;
  ValueList out;
  for (const auto& item : in.iterate(v)) {
    Value x = by_attr ? getAttribute(in, item, a.args[0]) : item;
    CallArgs copy = rest;
    bool pass = test.empty() ? x.truthy() : applyTest(in, test, x, copy);
    if (pass == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}
Value fSelect(Interpreter& in, const Value& v, CallArgs& a) { return selectImpl(in, v, a, false, true); }
Value fReject(Interpreter& in, const Value& v, CallArgs& a) { return selectImpl(in, v, a, false, false); }
Value fSelectattr(Interpreter& in, const Value& v, CallArgs& a) { return selectImpl(in, v, a, true, true); }
Value fRejectattr(Interpreter& in, const Value& v, CallArgs& a) { return selectImpl(in, v, a, true, false); }

Value fIndent(Interpreter&, const Value& v, CallArgs& a) {
  Value width = a.getOr(0, "width", Value(4));
  bool first = a.getOr(1, "first", Value(false)).truthy();
  bool blank = a.getOr(2, "blank", Value(false)).truthy();
  std::string unit = width.isString() ? width.str() : std::string(static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(width.asInt(), 1000))), ' ');
  std::vector<std::string> lines = pySplitlines(softStr(v) + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + unit : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : unit + lines[i]);
  }
  return Value(first ? unit + rv : rv);
}

Value fCenter(Interpreter&, const Value& v, CallArgs& a) {
  return Value(pyCenter(softStr(v), a.getOr(0, "width", Value(80)).asInt(), false, false, " "));
}

Value fEscape(Interpreter&, const Value& v, CallArgs&) {
  std::string out;
  for (char c : softStr(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(std::move(out));
}

Value fSafe(Interpreter&, const Value& v, CallArgs&) { return v; }

Value fWordcount(Interpreter&, const Value& v, CallArgs&) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8Decode(softStr(v))) {
    bool w = isAlpha(c) || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

// Python getattr only: a dict's keys are not attributes (its methods are).
Value fAttr(Interpreter&, const Value& v, CallArgs& a) {
  std::string name = a.getOr(0, "name", Value("")).toStr();
  if (v.isUndefined()) failUndefined(v);
  if (v.isNamespace()) {
    if (const Value* x = v.find(name)) return *x;
  }
  Value m = boundMethod(v, name);
  if (!m.isUndefined() || !m.str().empty()) return m;
  return Value::undefined("'" + v.typeName() + " object' has no attribute '" + name + "'");
}

Value fFormat(Interpreter&, const Value& v, CallArgs& a) {
  if (!a.kwargs.empty()) {
    ValuePairs kw;
    for (const auto& [k, val] : a.kwargs) kw.emplace_back(Value(k), val);
    return Value(percentFormat(softStr(v), Value::dict(std::move(kw))));
  }
  return Value(percentFormat(softStr(v), Value::list(a.args, true)));
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"abs", fAbs}, {"attr", fAttr}, {"capitalize", fCapitalize}, {"center", fCenter}, {"count", fLength},
    {"d", fDefault}, {"default", fDefault}, {"dictsort", fDictsort}, {"e", fEscape}, {"escape", fEscape},
    {"first", fFirst}, {"float", fFloat}, {"forceescape", fEscape}, {"format", fFormat}, {"indent", fIndent},
    {"int", fInt}, {"items", fItems}, {"join", fJoin}, {"last", fLast}, {"length", fLength}, {"list", fList},
    {"lower", fLower}, {"map", fMap}, {"max", fMax}, {"min", fMin}, {"reject", fReject},
    {"rejectattr", fRejectattr}, {"replace", fReplace}, {"reverse", fReverse}, {"round", fRound},
    {"safe", fSafe}, {"select", fSelect}, {"selectattr", fSelectattr}, {"sort", fSort}, {"string", fString},
    {"sum", fSum}, {"title", fTitle}, {"tojson", fTojson}, {"trim", fTrim}, {"unique", fUnique},
    {"upper", fUpper}, {"wordcount", fWordcount},
};

}  // namespace

Value applyFilter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  for (const auto& f : kFilters) {
    if (name == f.name) return f.fn(in, input, args);
  }
  throwRuntime("No filter named '" + name + "'.");
}

}  // namespace turbine::model::jinja
