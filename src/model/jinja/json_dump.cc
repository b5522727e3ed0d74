// jsonDumps: Python's json.dumps, byte for byte, for the values a template can hold.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "model/jinja/value.h"

namespace turbine::model::jinja {
namespace {

void appendEscaped(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  auto hex = [&out](unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", v & 0xFFFFu);
    out += buf;
  };
  auto simple = [&out](char32_t c) {
    switch (c) {
      case '"': out += "\\\""; return true;
      case '\\': out += "\\\\"; return true;
      case '\n': out += "\\n"; return true;
      case '\r': out += "\\r"; return true;
      case '\t': out += "\\t"; return true;
      case '\b': out += "\\b"; return true;
      case '\f': out += "\\f"; return true;
      default: return false;
    }
  };
  if (!ensure_ascii) {
    for (char ch : s) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (simple(c)) continue;
      if (c < 0x20) {
        hex(c);
      } else {
        out += ch;
      }
    }
  } else {
    for (char32_t c : utf8Decode(s)) {
      if (simple(c)) continue;
      if (c >= 0x20 && c < 0x7f) {
        out += static_cast<char>(c);
      } else if (c < 0x10000) {
        hex(static_cast<unsigned>(c));
      } else {
        char32_t v = c - 0x10000;
        hex(static_cast<unsigned>(0xD800 | (v >> 10)));
        hex(static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
      }
    }
  }
  out += '"';
}

std::string floatJson(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return formatFloat(d);
}

std::string keyString(const Value& k) {
  switch (k.kind()) {
    case Kind::kString: return k.str();
    case Kind::kInt: return std::to_string(k.asInt());
    case Kind::kFloat: return floatJson(k.asDouble());
    case Kind::kBool: return k.asBool() ? "true" : "false";
    case Kind::kNone: return "null";
    default: throwRuntime("keys must be str, int, float, bool or None, not " + k.typeName());
  }
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& o) : o_(o) {
    if (o.indent_is_string) {
      unit_ = o.indent_str;
    } else if (o.indent >= 0) {
      unit_ = std::string(static_cast<size_t>(o.indent), ' ');
    }
  }

  void dump(const Value& v, int depth) {
    if (depth > 512) throwRuntime("maximum recursion depth exceeded while encoding a JSON object");
    switch (v.kind()) {
      case Kind::kNone: out += "null"; return;
      case Kind::kBool: out += v.asBool() ? "true" : "false"; return;
      case Kind::kInt: out += std::to_string(v.asInt()); return;
      case Kind::kFloat: out += floatJson(v.asDouble()); return;
      case Kind::kString: appendEscaped(out, v.str(), o_.ensure_ascii); return;
      case Kind::kList: dumpList(v, depth); return;
      case Kind::kDict: dumpDict(v, depth); return;
      default: throwRuntime("Object of type " + v.typeName() + " is not JSON serializable");
    }
  }

  std::string out;

 private:
  bool indenting() const { return o_.indent_is_string || o_.indent >= 0; }
  void newline(int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) out += unit_;
  }

  void dumpList(const Value& v, int depth) {
    if (v.items().empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < v.items().size(); ++i) {
      if (i) out += o_.item_sep;
      if (indenting()) newline(depth + 1);
      dump(v.items()[i], depth + 1);
    }
    if (indenting()) newline(depth);
    out += ']';
  }

  void dumpDict(const Value& v, int depth) {
    if (v.pairs().empty()) {
      out += "{}";
      return;
    }
    std::vector<std::pair<std::string, const Value*>> entries;
    for (const auto& [k, val] : v.pairs()) entries.emplace_back(keyString(k), &val);
    if (o_.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
    }
    out += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += o_.item_sep;
      if (indenting()) newline(depth + 1);
      appendEscaped(out, entries[i].first, o_.ensure_ascii);
      out += o_.key_sep;
      dump(*entries[i].second, depth + 1);
    }
    if (indenting()) newline(depth);
    out += '}';
  }

  const JsonDumpOptions& o_;
  std::string unit_;
};

}  // namespace

std::string jsonDumps(const Value& v, const JsonDumpOptions& options) {
  Dumper d(options);
  d.dump(v, 0);
  return std::move(d.out);
}

}  // namespace turbine::model::jinja
