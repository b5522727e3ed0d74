#include "structured/json_schema.h"

#include "structured/regex.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace turbine::structured {
namespace {

using Json = nlohmann::ordered_json;
using Kind = Symbol::Kind;

// Longest chain of rules a length or count bound may unroll into.
constexpr int64_t kMaxUnrolled = 4096;

// Keywords that constrain values in ways this compiler does not enforce: refused, never ignored.
// (minimum / maximum / exclusiveMinimum / exclusiveMaximum are enforced on integers only; see
// typeRule.)
const std::set<std::string>& unsupportedKeywords() {
  static const std::set<std::string> k = {
      "patternProperties", "multipleOf", "minProperties", "maxProperties", "uniqueItems",
      "contains", "minContains", "maxContains", "not", "if", "then", "else",
      "dependentRequired", "dependentSchemas", "dependencies", "propertyNames",
      "unevaluatedProperties", "unevaluatedItems", "additionalItems", "$dynamicRef"};
  return k;
}

// The regex a string `format` is held to; "" for formats not enforced (email, uri, ...).
std::string formatPattern(const std::string& format) {
  static const std::string kDate = R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))";
  static const std::string kTime = R"(([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)";
  if (format == "date") return "^" + kDate + "$";
  if (format == "time") return "^" + kTime + "$";
  if (format == "date-time") return "^" + kDate + "[Tt ]" + kTime + "$";
  if (format == "uuid")
    return "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
  return "";
}

// The first of minimum / maximum / exclusiveMinimum / exclusiveMaximum that `s` has, or null.
const char* numericBound(const Json& s) {
  for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
    if (s.contains(key)) return key;
  }
  return nullptr;
}

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const Json& root) : root_(root) {}

  Result<int32_t> compile(const Json& s, const std::string& path, int depth = 0);
  Result<Grammar> finish(int32_t value_rule) && {
    const int32_t top = b_.addRule("root");
    b_.addAlternative(top, {rule(ws()), rule(value_rule), rule(ws())});
    return std::move(b_).build(top);
  }

 private:
  static Symbol rule(int32_t r) { return GrammarBuilder::rule(r); }
  Symbol lit(char c) { return b_.byte(static_cast<uint8_t>(c)); }
  std::vector<Symbol> literal(std::string_view text) {
    std::vector<Symbol> out;
    b_.appendLiteral(text, &out);
    return out;
  }
  int32_t literalRule(const std::string& name, std::string_view text) {
    const int32_t r = b_.addRule(name);
    b_.addAlternative(r, literal(text));
    return r;
  }

  int32_t ws();
  int32_t digits();  // [0-9]*
  int32_t character();  // one JSON string character (a code point or an escape)
  int32_t stringRule(int64_t min_len, int64_t max_len);  // max_len < 0: unbounded
  int32_t numberRule();
  int32_t integerRule();
  // Integers in [lo, hi] (either end open when unset), canonical decimal (no leading zeros).
  int32_t integerRangeRule(std::optional<int64_t> lo, std::optional<int64_t> hi);
  // Naturals in [a, b] (b unset: unbounded), a >= 0.
  int32_t naturalRangeRule(int64_t a, std::optional<int64_t> b);
  // Digit strings of one length between x and y (x <= y, same length), leading zeros allowed.
  int32_t digitRangeRule(const std::string& x, const std::string& y);
  Result<int32_t> boundedIntegerRule(const Json& s, const std::string& path);
  int32_t anyValue();
  int32_t anyObject();
  int32_t anyArray();
  Result<int32_t> typeRule(const std::string& type, const Json& s, const std::string& path, int depth);
  Result<int32_t> objectRule(const Json& s, const std::string& path, int depth);
  Result<int32_t> arrayRule(const Json& s, const std::string& path, int depth);
  Result<int32_t> refRule(const std::string& ref, const std::string& path, int depth);
  Result<int32_t> enumRule(const Json& values, const std::string& path);

  GrammarBuilder b_;
  const Json& root_;
  std::map<std::string, int32_t> refs_;
  int32_t ws_ = -1, digits_ = -1, char_ = -1, any_string_ = -1, number_ = -1, integer_ = -1;
  int32_t any_value_ = -1, any_object_ = -1, any_array_ = -1, bool_ = -1, null_ = -1;
};

int32_t SchemaCompiler::ws() {
  if (ws_ >= 0) return ws_;
  ByteSet space;
  space.add(' ').add('\t').add('\n').add('\r');
  const Symbol sp = b_.bytes(space);
  // ws_k -> "" | space ws_{k+1}; ws_N -> "".
  std::vector<int32_t> chain;
  for (int k = 0; k <= kMaxWhitespace; ++k) chain.push_back(b_.addRule("ws"));
  for (int k = 0; k <= kMaxWhitespace; ++k) {
    b_.addAlternative(chain[k], {});
    if (k < kMaxWhitespace) b_.addAlternative(chain[k], {sp, rule(chain[k + 1])});
  }
  return ws_ = chain[0];
}

int32_t SchemaCompiler::digits() {
  if (digits_ >= 0) return digits_;
  digits_ = b_.addRule("digits");
  b_.addAlternative(digits_, {});
  b_.addAlternative(digits_, {b_.bytes(ByteSet::range('0', '9')), rule(digits_)});
  return digits_;
}

int32_t SchemaCompiler::character() {
  if (char_ >= 0) return char_;
  char_ = b_.addRule("char");
  ByteSet plain = ByteSet::range(0x20, 0x7f);
  plain.bits['"' >> 6] &= ~(uint64_t{1} << ('"' & 63));
  plain.bits['\\' >> 6] &= ~(uint64_t{1} << ('\\' & 63));
  b_.addAlternative(char_, {b_.bytes(plain)});
  ByteSet esc;
  for (char c : std::string_view("\"\\/bfnrt")) esc.add(static_cast<uint8_t>(c));
  b_.addAlternative(char_, {lit('\\'), b_.bytes(esc)});
  ByteSet hex = ByteSet::range('0', '9').addRange('a', 'f').addRange('A', 'F');
  const Symbol h = b_.bytes(hex);
  b_.addAlternative(char_, {lit('\\'), lit('u'), h, h, h, h});
  // Well-formed UTF-8 (RFC 3629 table 3-7).
  const Symbol cont = b_.bytes(ByteSet::range(0x80, 0xbf));
  b_.addAlternative(char_, {b_.bytes(ByteSet::range(0xc2, 0xdf)), cont});
  b_.addAlternative(char_, {b_.byte(0xe0), b_.bytes(ByteSet::range(0xa0, 0xbf)), cont});
  b_.addAlternative(char_, {b_.bytes(ByteSet::range(0xe1, 0xec).addRange(0xee, 0xef)), cont, cont});
  b_.addAlternative(char_, {b_.byte(0xed), b_.bytes(ByteSet::range(0x80, 0x9f)), cont});
  b_.addAlternative(char_, {b_.byte(0xf0), b_.bytes(ByteSet::range(0x90, 0xbf)), cont, cont});
  b_.addAlternative(char_, {b_.bytes(ByteSet::range(0xf1, 0xf3)), cont, cont, cont});
  b_.addAlternative(char_, {b_.byte(0xf4), b_.bytes(ByteSet::range(0x80, 0x8f)), cont, cont});
  return char_;
}

int32_t SchemaCompiler::stringRule(int64_t min_len, int64_t max_len) {
  const bool any = min_len == 0 && max_len < 0;
  if (any && any_string_ >= 0) return any_string_;
  const int32_t c = character();
  // body_i: i characters written so far.
  const int64_t unrolled = max_len >= 0 ? max_len : min_len;
  std::vector<int32_t> body;
  for (int64_t i = 0; i <= unrolled; ++i) body.push_back(b_.addRule("string_body"));
  for (int64_t i = 0; i <= unrolled; ++i) {
    const int32_t r = body[static_cast<size_t>(i)];
    if (i >= min_len) b_.addAlternative(r, {lit('"')});
    if (i < unrolled) {
      b_.addAlternative(r, {rule(c), rule(body[static_cast<size_t>(i + 1)])});
    } else if (max_len < 0) {
      b_.addAlternative(r, {rule(c), rule(r)});  // unbounded: loop on the last one
    }
  }
  const int32_t s = b_.addRule("string");
  b_.addAlternative(s, {lit('"'), rule(body[0])});
  if (any) any_string_ = s;
  return s;
}

int32_t SchemaCompiler::integerRule() {
  if (integer_ >= 0) return integer_;
  const int32_t abs = b_.addRule("integer_abs");
  b_.addAlternative(abs, {lit('0')});
  b_.addAlternative(abs, {b_.bytes(ByteSet::range('1', '9')), rule(digits())});
  integer_ = b_.addRule("integer");
  b_.addAlternative(integer_, {rule(abs)});
  b_.addAlternative(integer_, {lit('-'), rule(abs)});
  return integer_;
}

int32_t SchemaCompiler::digitRangeRule(const std::string& x, const std::string& y) {
  const int32_t r = b_.addRule("digit_range");
  const Symbol digit = b_.bytes(ByteSet::range('0', '9'));
  if (x == y) {
    b_.addAlternative(r, literal(x));
  } else if (x.size() == 1) {
    b_.addAlternative(r, {b_.bytes(ByteSet::range(static_cast<uint8_t>(x[0]), static_cast<uint8_t>(y[0])))});
  } else if (x[0] == y[0]) {
    b_.addAlternative(r, {lit(x[0]), rule(digitRangeRule(x.substr(1), y.substr(1)))});
  } else {
    const size_t rest = x.size() - 1;
    b_.addAlternative(r, {lit(x[0]), rule(digitRangeRule(x.substr(1), std::string(rest, '9')))});
    if (x[0] + 1 <= y[0] - 1) {
      std::vector<Symbol> alt = {b_.bytes(ByteSet::range(static_cast<uint8_t>(x[0] + 1),
                                                         static_cast<uint8_t>(y[0] - 1)))};
      alt.insert(alt.end(), rest, digit);
      b_.addAlternative(r, std::move(alt));
    }
    b_.addAlternative(r, {lit(y[0]), rule(digitRangeRule(std::string(rest, '0'), y.substr(1)))});
  }
  return r;
}

int32_t SchemaCompiler::naturalRangeRule(int64_t a, std::optional<int64_t> b) {
  const int32_t r = b_.addRule("natural_range");
  const std::string sa = std::to_string(a);
  const size_t la = sa.size(), lb = b ? std::to_string(*b).size() : la;
  for (size_t len = la; len <= lb; ++len) {
    const std::string low = len == la ? sa : "1" + std::string(len - 1, '0');
    const std::string high = b && len == lb ? std::to_string(*b) : std::string(len, '9');
    b_.addAlternative(r, {rule(digitRangeRule(low, high))});
  }
  if (!b) {  // every longer number
    std::vector<Symbol> alt = {b_.bytes(ByteSet::range('1', '9'))};
    alt.insert(alt.end(), la, b_.bytes(ByteSet::range('0', '9')));
    alt.push_back(rule(digits()));
    b_.addAlternative(r, std::move(alt));
  }
  return r;
}

int32_t SchemaCompiler::integerRangeRule(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  const int32_t r = b_.addRule("integer_range");
  if (!hi || *hi >= 0) {  // the non-negative part: [max(lo, 0), hi]
    b_.addAlternative(r, {rule(naturalRangeRule(std::max<int64_t>(lo.value_or(0), 0), hi))});
  }
  if (!lo || *lo < 0) {  // the negative part: -m for m in [max(-hi, 1), -lo]
    const int64_t m_lo = hi && *hi < 0 ? -*hi : 1;
    std::optional<int64_t> m_hi;
    if (lo) m_hi = -*lo;
    b_.addAlternative(r, {lit('-'), rule(naturalRangeRule(m_lo, m_hi))});
  }
  return r;
}

// minimum / maximum / exclusiveMinimum / exclusiveMaximum of an integer: to [lo, hi].
Result<int32_t> SchemaCompiler::boundedIntegerRule(const Json& s, const std::string& path) {
  constexpr double kLimit = 1e18;  // bounds beyond are refused (int64 arithmetic below)
  std::optional<int64_t> lo, hi;
  for (const char* key : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
    if (!s.contains(key)) continue;
    if (!s[key].is_number() || !(std::fabs(s[key].get<double>()) <= kLimit)) {
      return invalidArgument("JSON schema " + path + ": " + key + " must be a number within +-1e18");
    }
    const double v = s[key].get<double>();
    const bool exclusive = key[0] == 'e';
    if (std::string_view(key).find("inimum") != std::string_view::npos) {
      const auto b = static_cast<int64_t>(exclusive ? std::floor(v) + 1 : std::ceil(v));
      lo = lo ? std::max(*lo, b) : b;
    } else {
      const auto b = static_cast<int64_t>(exclusive ? std::ceil(v) - 1 : std::floor(v));
      hi = hi ? std::min(*hi, b) : b;
    }
  }
  if (!lo && !hi) return integerRule();
  if (lo && hi && *lo > *hi) {
    return invalidArgument("JSON schema " + path + ": no integer satisfies its minimum and maximum");
  }
  return integerRangeRule(lo, hi);
}

int32_t SchemaCompiler::numberRule() {
  if (number_ >= 0) return number_;
  const Symbol digit = b_.bytes(ByteSet::range('0', '9'));
  const int32_t frac = b_.addRule("fraction");
  b_.addAlternative(frac, {});
  b_.addAlternative(frac, {lit('.'), digit, rule(digits())});
  const int32_t exp = b_.addRule("exponent");
  b_.addAlternative(exp, {});
  ByteSet e, sign;
  e.add('e').add('E');
  sign.add('+').add('-');
  b_.addAlternative(exp, {b_.bytes(e), digit, rule(digits())});
  b_.addAlternative(exp, {b_.bytes(e), b_.bytes(sign), digit, rule(digits())});
  number_ = b_.addRule("number");
  b_.addAlternative(number_, {rule(integerRule()), rule(frac), rule(exp)});
  return number_;
}

int32_t SchemaCompiler::anyValue() {
  if (any_value_ >= 0) return any_value_;
  any_value_ = b_.addRule("value");
  b_.addAlternative(any_value_, {rule(anyObject())});
  b_.addAlternative(any_value_, {rule(anyArray())});
  b_.addAlternative(any_value_, {rule(stringRule(0, -1))});
  b_.addAlternative(any_value_, {rule(numberRule())});
  if (bool_ < 0) {
    bool_ = b_.addRule("boolean");
    b_.addAlternative(bool_, literal("true"));
    b_.addAlternative(bool_, literal("false"));
  }
  if (null_ < 0) null_ = literalRule("null", "null");
  b_.addAlternative(any_value_, {rule(bool_)});
  b_.addAlternative(any_value_, {rule(null_)});
  return any_value_;
}

// Any object / array: the schema rules with nothing listed (extra keys and items any value).
// The rule exists before its body, which refers back to it through anyValue().
int32_t SchemaCompiler::anyObject() {
  if (any_object_ >= 0) return any_object_;
  any_object_ = b_.addRule("object");
  b_.addAlternative(any_object_, {rule(*objectRule(Json::object(), "#", 0))});
  return any_object_;
}

int32_t SchemaCompiler::anyArray() {
  if (any_array_ >= 0) return any_array_;
  any_array_ = b_.addRule("array");
  b_.addAlternative(any_array_, {rule(*arrayRule(Json::object(), "#", 0))});
  return any_array_;
}

Result<int32_t> SchemaCompiler::enumRule(const Json& values, const std::string& path) {
  if (!values.is_array() || values.empty())
    return invalidArgument("JSON schema " + path + ": enum must be a non-empty array");
  const int32_t r = b_.addRule("enum");
  for (const Json& v : values) b_.addAlternative(r, literal(v.dump()));
  return r;
}

Result<int32_t> SchemaCompiler::refRule(const std::string& ref, const std::string& path,
                                        int depth) {
  if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
  if (ref.empty() || ref[0] != '#')
    return invalidArgument("JSON schema " + path + ": $ref '" + ref +
                           "' is not supported (only references into the schema, '#...')");
  const Json* target = &root_;
  if (ref.size() > 1) {
    try {
      target = &root_.at(Json::json_pointer(ref.substr(1)));
    } catch (const std::exception&) {
      return invalidArgument("JSON schema " + path + ": $ref '" + ref + "' points nowhere");
    }
  }
  // The rule exists before its body is compiled, so that the schema may refer to itself.
  const int32_t r = b_.addRule("ref " + ref);
  refs_[ref] = r;
  TURBINE_ASSIGN_OR_RETURN(const int32_t body, compile(*target, ref, depth + 1));
  b_.addAlternative(r, {rule(body)});
  return r;
}

Result<int32_t> SchemaCompiler::objectRule(const Json& s, const std::string& path, int depth) {
  struct Prop {
    std::string name;
    int32_t value;
    bool required;
  };
  std::set<std::string> required;
  if (s.contains("required")) {
    const Json& req = s["required"];
    if (!req.is_array())
      return invalidArgument("JSON schema " + path + ": required must be an array of names");
    for (const Json& n : req) {
      if (!n.is_string())
        return invalidArgument("JSON schema " + path + ": required must be an array of names");
      required.insert(n.get<std::string>());
    }
  }
  std::vector<Prop> props;
  const bool has_props = s.contains("properties");
  if (has_props) {
    const Json& p = s["properties"];
    if (!p.is_object())
      return invalidArgument("JSON schema " + path + ": properties must be an object");
    for (auto it = p.begin(); it != p.end(); ++it) {
      TURBINE_ASSIGN_OR_RETURN(const int32_t v,
                               compile(it.value(), path + "/properties/" + it.key(), depth + 1));
      props.push_back({it.key(), v, required.count(it.key()) > 0});
    }
  }
  for (const std::string& name : required) {
    const bool listed = std::any_of(props.begin(), props.end(),
                                    [&](const Prop& p) { return p.name == name; });
    if (!listed) props.push_back({name, anyValue(), true});
  }
  // Extra keys: additionalProperties false / a schema / true; absent: none when properties are
  // listed, any otherwise.
  int32_t extra = -1;
  if (s.contains("additionalProperties")) {
    const Json& a = s["additionalProperties"];
    if (a.is_boolean()) {
      extra = a.get<bool>() ? anyValue() : -1;
    } else {
      TURBINE_ASSIGN_OR_RETURN(extra, compile(a, path + "/additionalProperties", depth + 1));
    }
  } else if (!has_props && required.empty()) {
    extra = anyValue();
  }
  // after[k][first]: properties 0..k-1 are dealt with; `first`: nothing written yet.
  const size_t n = props.size();
  std::vector<std::array<int32_t, 2>> after(n + 1);
  for (size_t k = 0; k <= n; ++k) {
    after[k][0] = b_.addRule("object_rest");
    after[k][1] = b_.addRule("object_rest_first");
  }
  for (size_t k = 0; k <= n; ++k) {
    for (int first = 0; first < 2; ++first) {
      const int32_t r = after[k][first];
      std::vector<Symbol> sep;
      if (!first) sep = {lit(','), rule(ws())};
      if (k == n) {
        b_.addAlternative(r, {lit('}')});
        if (extra >= 0) {
          std::vector<Symbol> alt = sep;
          for (Symbol sym : {rule(stringRule(0, -1)), rule(ws()), lit(':'), rule(ws()),
                             rule(extra), rule(ws()), rule(after[n][0])}) {
            alt.push_back(sym);
          }
          b_.addAlternative(r, std::move(alt));
        }
        continue;
      }
      std::vector<Symbol> alt = sep;
      b_.appendLiteral(Json(props[k].name).dump(), &alt);
      for (Symbol sym : {rule(ws()), lit(':'), rule(ws()), rule(props[k].value), rule(ws()),
                         rule(after[k + 1][0])}) {
        alt.push_back(sym);
      }
      b_.addAlternative(r, std::move(alt));
      if (!props[k].required) b_.addAlternative(r, {rule(after[k + 1][first])});
    }
  }
  const int32_t obj = b_.addRule("object " + path);
  b_.addAlternative(obj, {lit('{'), rule(ws()), rule(after[0][1])});
  return obj;
}

Result<int32_t> SchemaCompiler::arrayRule(const Json& s, const std::string& path, int depth) {
  std::vector<int32_t> prefix;
  if (s.contains("prefixItems")) {
    const Json& p = s["prefixItems"];
    if (!p.is_array()) return invalidArgument("JSON schema " + path + ": prefixItems must be an array");
    for (size_t i = 0; i < p.size(); ++i) {
      TURBINE_ASSIGN_OR_RETURN(const int32_t r,
                               compile(p[i], path + "/prefixItems/" + std::to_string(i), depth + 1));
      prefix.push_back(r);
    }
  }
  int32_t items = anyValue();  // after the prefix; -1: no more items
  if (s.contains("items")) {
    const Json& it = s["items"];
    if (it.is_boolean()) {
      items = it.get<bool>() ? anyValue() : -1;
    } else if (it.is_array()) {  // draft 4-7 tuple form
      for (size_t i = 0; i < it.size(); ++i) {
        TURBINE_ASSIGN_OR_RETURN(const int32_t r,
                                 compile(it[i], path + "/items/" + std::to_string(i), depth + 1));
        prefix.push_back(r);
      }
    } else {
      TURBINE_ASSIGN_OR_RETURN(items, compile(it, path + "/items", depth + 1));
    }
  }
  auto count = [&](const char* key, int64_t dflt, int64_t* out) -> Status {
    *out = dflt;
    if (!s.contains(key)) return Status::ok();
    if (!s[key].is_number_integer() || s[key].get<int64_t>() < 0)
      return invalidArgument("JSON schema " + path + ": " + key + " must be a non-negative integer");
    *out = s[key].get<int64_t>();
    return Status::ok();
  };
  int64_t min_items = 0, max_items = -1;
  TURBINE_RETURN_IF_ERROR(count("minItems", 0, &min_items));
  TURBINE_RETURN_IF_ERROR(count("maxItems", -1, &max_items));
  const auto np = static_cast<int64_t>(prefix.size());
  if (items < 0) max_items = max_items < 0 ? np : std::min(max_items, np);
  if (max_items >= 0 && min_items > max_items)
    return invalidArgument("JSON schema " + path + ": minItems is above what the array may hold");
  const int64_t unrolled = max_items >= 0 ? max_items : std::max(min_items, np);
  if (unrolled > kMaxUnrolled)
    return invalidArgument("JSON schema " + path + ": item counts above " +
                           std::to_string(kMaxUnrolled) + " are not supported");
  // at[i]: i items written.
  std::vector<int32_t> at;
  for (int64_t i = 0; i <= unrolled; ++i) at.push_back(b_.addRule("array_rest"));
  // loop: past the unrolled count, any number more (only when maxItems is absent).
  const int32_t loop = b_.addRule("array_loop");
  if (max_items < 0) {
    b_.addAlternative(loop, {lit(']')});
    b_.addAlternative(loop, {lit(','), rule(ws()), rule(items), rule(ws()), rule(loop)});
  }
  for (int64_t i = 0; i <= unrolled; ++i) {
    const int32_t r = at[static_cast<size_t>(i)];
    if (i >= min_items) b_.addAlternative(r, {lit(']')});
    const bool more = i < unrolled || max_items < 0;
    if (!more) continue;
    const int32_t item = i < np ? prefix[static_cast<size_t>(i)] : items;
    std::vector<Symbol> alt;
    if (i > 0) alt = {lit(','), rule(ws())};
    const int32_t next = i < unrolled ? at[static_cast<size_t>(i + 1)] : loop;
    for (Symbol sym : {rule(item), rule(ws()), rule(next)}) alt.push_back(sym);
    b_.addAlternative(r, std::move(alt));
  }
  const int32_t arr = b_.addRule("array " + path);
  b_.addAlternative(arr, {lit('['), rule(ws()), rule(at[0])});
  return arr;
}

Result<int32_t> SchemaCompiler::typeRule(const std::string& type, const Json& s, const std::string& path,
                                         int depth) {
  if (type == "string") {
    int64_t lo = 0, hi = -1;
    for (const char* key : {"minLength", "maxLength"}) {
      if (!s.contains(key)) continue;
      if (!s[key].is_number_integer() || s[key].get<int64_t>() < 0) {
        return invalidArgument("JSON schema " + path + ": " + key + " must be a non-negative integer");
      }
      (key[1] == 'i' ? lo : hi) = s[key].get<int64_t>();
    }
    if ((hi >= 0 && lo > hi) || std::max(lo, hi) > kMaxUnrolled) {
      return invalidArgument("JSON schema " + path + ": string lengths must satisfy minLength <= "
                             "maxLength <= " + std::to_string(kMaxUnrolled));
    }
    std::string pattern;
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) {
        return invalidArgument("JSON schema " + path + ": pattern must be a string");
      }
      pattern = s["pattern"].get<std::string>();
    } else if (s.contains("format") && s["format"].is_string()) {
      pattern = formatPattern(s["format"].get<std::string>());  // "" when not enforced
    }
    if (pattern.empty()) return stringRule(lo, hi);
    if (lo != 0 || hi >= 0) {
      return invalidArgument("JSON schema " + path +
                             ": pattern (or format) with minLength / maxLength is not supported");
    }
    RegexOptions ro;
    ro.json_string = true;
    ro.search = true;
    Result<int32_t> body = addRegexRule(&b_, pattern, ro);
    if (!body.isOk()) {
      return invalidArgument("JSON schema " + path + ": pattern: " + body.status().message());
    }
    const int32_t r = b_.addRule("string_pattern");
    b_.addAlternative(r, {lit('"'), rule(*body), lit('"')});
    return r;
  }
  if (type == "integer") return boundedIntegerRule(s, path);
  if (type == "number") return numberRule();  // bounds refused in compile()
  if (type == "boolean") {
    anyValue();
    return bool_;
  }
  if (type == "null") {
    anyValue();
    return null_;
  }
  if (type == "object") return objectRule(s, path, depth);
  if (type == "array") return arrayRule(s, path, depth);
  return invalidArgument("JSON schema " + path + ": unknown type '" + type + "'");
}

Result<int32_t> SchemaCompiler::compile(const Json& s, const std::string& path, int depth) {
  if (depth > 64) return invalidArgument("JSON schema " + path + ": nested too deeply");
  const std::string where = path.empty() ? "#" : path;
  if (s.is_boolean()) {
    if (s.get<bool>()) return anyValue();
    return invalidArgument("JSON schema " + where + ": false admits no value");
  }
  if (!s.is_object()) return invalidArgument("JSON schema " + where + ": a schema must be an object");
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (unsupportedKeywords().count(it.key())) {
      return invalidArgument("JSON schema " + where + ": keyword '" + it.key() +
                             "' is not supported for structured output");
    }
  }
  if (const char* bound = numericBound(s)) {
    // Enforced for integers only (they apply to numbers alone, so other types ignore them).
    bool number_possible = !s.contains("type");
    for (const char* other : {"enum", "const", "$ref", "anyOf", "oneOf", "allOf"}) {
      number_possible |= s.contains(other);  // paths that would not apply the bound
    }
    const Json types = s.contains("type") && s["type"].is_array() ? s["type"] : Json::array({s.value("type", Json())});
    for (const auto& t : types) number_possible |= t == "number";
    if (number_possible) {
      return invalidArgument("JSON schema " + where + ": keyword '" + bound +
                             "' is supported for type integer only");
    }
  }
  if (s.contains("$ref")) {
    if (!s["$ref"].is_string()) return invalidArgument("JSON schema " + where + ": $ref must be a string");
    return refRule(s["$ref"].get<std::string>(), where, depth);
  }
  if (s.contains("const")) {
    const int32_t r = b_.addRule("const");
    b_.addAlternative(r, literal(s["const"].dump()));
    return r;
  }
  if (s.contains("enum")) return enumRule(s["enum"], where);
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!s.contains(key)) continue;
    const Json& list = s[key];
    if (!list.is_array() || list.empty())
      return invalidArgument("JSON schema " + where + ": " + key + " must be a non-empty array");
    const int32_t r = b_.addRule(key);
    for (size_t i = 0; i < list.size(); ++i) {
      TURBINE_ASSIGN_OR_RETURN(const int32_t alt,
                               compile(list[i], where + "/" + key + "/" + std::to_string(i), depth + 1));
      b_.addAlternative(r, {rule(alt)});
    }
    return r;
  }
  if (s.contains("allOf")) {
    const Json& list = s["allOf"];
    if (!list.is_array() || list.size() != 1)
      return invalidArgument("JSON schema " + where + ": allOf is supported with one schema only");
    return compile(list[0], where + "/allOf/0", depth + 1);
  }
  std::vector<std::string> types;
  if (s.contains("type")) {
    const Json& t = s["type"];
    if (t.is_string()) {
      types.push_back(t.get<std::string>());
    } else if (t.is_array() && !t.empty()) {
      for (const Json& x : t) {
        if (!x.is_string()) return invalidArgument("JSON schema " + where + ": type must name types");
        types.push_back(x.get<std::string>());
      }
    } else {
      return invalidArgument("JSON schema " + where + ": type must be a string or a list of them");
    }
  } else if (s.contains("properties") || s.contains("required") ||
             s.contains("additionalProperties")) {
    types.push_back("object");
  } else if (s.contains("items") || s.contains("prefixItems")) {
    types.push_back("array");
  } else if (s.contains("minLength") || s.contains("maxLength")) {
    types.push_back("string");
  } else {
    return anyValue();  // no constraint on the value
  }
  if (s.contains("nullable") && s["nullable"].is_boolean() && s["nullable"].get<bool>() &&
      std::find(types.begin(), types.end(), "null") == types.end()) {
    types.push_back("null");
  }
  if (types.size() == 1) return typeRule(types[0], s, where, depth);
  const int32_t r = b_.addRule("types");
  for (const std::string& t : types) {
    TURBINE_ASSIGN_OR_RETURN(const int32_t alt, typeRule(t, s, where, depth));
    b_.addAlternative(r, {rule(alt)});
  }
  return r;
}

}  // namespace

Result<std::shared_ptr<const Grammar>> compileJsonSchema(const nlohmann::ordered_json& schema) {
  SchemaCompiler c(schema);
  TURBINE_ASSIGN_OR_RETURN(const int32_t value, c.compile(schema, ""));
  TURBINE_ASSIGN_OR_RETURN(Grammar g, std::move(c).finish(value));
  return std::make_shared<const Grammar>(std::move(g));
}

Result<std::shared_ptr<const Grammar>> compileChoice(const std::vector<std::string>& choices) {
  if (choices.empty()) return invalidArgument("guided_choice must list at least one choice");
  GrammarBuilder b;
  const int32_t r = b.addRule("choice");
  for (const std::string& c : choices) {
    std::vector<Symbol> alt;
    b.appendLiteral(c, &alt);
    b.addAlternative(r, std::move(alt));
  }
  TURBINE_ASSIGN_OR_RETURN(Grammar g, std::move(b).build(r));
  return std::make_shared<const Grammar>(std::move(g));
}

}  // namespace turbine::structured
