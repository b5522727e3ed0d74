// Value: the dynamic value of the Jinja interpreter, modelled on the Python objects that Jinja2
// hands a template (str, int, float, bool, None, list/tuple, dict, Namespace, callables, and
// jinja2.Undefined). Strings are UTF-8; everything that Python measures in code points (len,
// indexing, slicing) is done on code points.
// Lists, dicts and namespaces are reference types (shared_ptr), as in Python: copying a Value
// copies the reference. Only namespaces are mutated after construction (the sandbox forbids
// mutating lists and dicts).
// Thread safety: a Value tree is owned by one render; not shared across threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace turbine::model::jinja {

class Value;
struct CallArgs;
class Interpreter;

using ValueList = std::vector<Value>;
using ValuePairs = std::vector<std::pair<Value, Value>>;
// A native callable: a global function, a bound method, a macro.
using NativeFn = std::function<Value(Interpreter&, CallArgs&)>;

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

// An error raised while rendering; caught at the Template boundary and turned into a Status.
// kRaise is a template's own raise_exception(message): its message is passed through verbatim.
struct JinjaError {
  enum class Type { kRuntime, kRaise, kSyntax };
  Type type = Type::kRuntime;
  std::string message;
  int line = 0;
};
[[noreturn]] void throwRuntime(std::string message);

class Value {
 public:
  Value() = default;  // Undefined
  static Value undefined(std::string hint = {});
  static Value none();
  Value(bool b);  // NOLINT: implicit by design, like Python literals
  Value(int64_t i);  // NOLINT
  Value(int i) : Value(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double f);  // NOLINT
  Value(std::string s);  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}  // NOLINT
  static Value list(ValueList items, bool tuple = false);
  static Value dict(ValuePairs pairs = {});
  static Value nameSpace(ValuePairs pairs = {});
  static Value callable(NativeFn fn, std::string name);

  Kind kind() const { return kind_; }
  bool isUndefined() const { return kind_ == Kind::kUndefined; }
  bool isNone() const { return kind_ == Kind::kNone; }
  bool isBool() const { return kind_ == Kind::kBool; }
  bool isInt() const { return kind_ == Kind::kInt; }
  bool isFloat() const { return kind_ == Kind::kFloat; }
  bool isNumber() const { return isInt() || isFloat() || isBool(); }  // Python: bool is an int
  bool isString() const { return kind_ == Kind::kString; }
  bool isList() const { return kind_ == Kind::kList; }
  bool isTuple() const { return kind_ == Kind::kList && tuple_; }
  bool isDict() const { return kind_ == Kind::kDict; }
  bool isNamespace() const { return kind_ == Kind::kNamespace; }
  bool isCallable() const { return kind_ == Kind::kCallable; }

  bool asBool() const { return b_; }
  int64_t asInt() const { return isBool() ? (b_ ? 1 : 0) : i_; }  // int or bool
  double asDouble() const { return isFloat() ? f_ : static_cast<double>(asInt()); }
  const std::string& str() const { return s_; }  // string payload; Undefined: its hint
  const ValueList& items() const { return *list_; }
  const ValuePairs& pairs() const { return *dict_; }
  ValuePairs& mutablePairs() const { return *dict_; }  // namespaces only
  const NativeFn& fn() const { return *fn_; }
  const std::string& fnName() const { return s_; }

  // Dict / namespace lookup by key (Python equality); nullptr when absent.
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(const Value& key, Value v) const;  // namespaces only

  bool truthy() const;                 // Python bool()
  std::string toStr() const;           // Python str()
  std::string repr() const;            // Python repr()
  std::string typeName() const;        // Python type name: 'str', 'dict', ...
  int64_t length() const;              // Python len(); throws for unsized values
  bool identical(const Value& o) const;  // Python `is` for the singletons

  static Value fromJson(const nlohmann::json& j);
  static Value fromJson(const nlohmann::ordered_json& j);

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValuePairs> dict_;
  std::shared_ptr<NativeFn> fn_;
};

// Python == (1 == 1.0 == True, deep for containers).
bool equals(const Value& a, const Value& b);
// Python <: -1, 0, 1; throws TypeError-like errors for unorderable types.
int compare(const Value& a, const Value& b);

// Python float repr (shortest round-trip, '1.0', '1e+16', 'inf').
std::string formatFloat(double d);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as Python writes it.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  int indent = -1;              // -1: no indentation (None)
  std::string indent_str;       // used when indent_is_string
  bool indent_is_string = false;
  std::string item_sep = ", ";  // defaults follow Python: ',' when indenting
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string jsonDumps(const Value& v, const JsonDumpOptions& options);

// UTF-8 helpers (invalid bytes decode as U+FFFD-free raw bytes: each is one code point).
std::u32string utf8Decode(std::string_view s);
std::string utf8Encode(std::u32string_view s);
void appendUtf8(std::string& out, char32_t c);
bool isAscii(std::string_view s);
bool isPySpace(char32_t c);  // Python str.isspace()

}  // namespace turbine::model::jinja
