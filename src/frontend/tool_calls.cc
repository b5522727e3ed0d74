#include "frontend/tool_calls.h"

#include <cctype>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "frontend/stop_strings.h"

namespace turbine::frontend {
namespace {

constexpr std::string_view kHermesStart = "<tool_call>";
constexpr std::string_view kHermesEnd = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";
constexpr std::string_view kPythonStart = "<|python_start|>";
constexpr std::string_view kPythonEnd = "<|python_end|>";

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trimLeft(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  s = trimLeft(s);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string newCallId(ToolCallFormat format) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const bool mistral = format == ToolCallFormat::kMistral;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kChars[rng() % (sizeof kChars - 1)];
  return id;
}

// A call's arguments as JSON text: an object as it is, a string (already serialized by the
// model) as it is, none as {}.
std::string argumentsText(const nlohmann::json& args) {
  if (args.is_null()) return "{}";
  if (args.is_string()) return args.get<std::string>();
  return args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One call from its JSON object: {"name": "...", "arguments" (or "parameters"): {...}}.
std::optional<ToolCall> callFromObject(const nlohmann::json& j, ToolCallFormat format) {
  if (!j.is_object()) return std::nullopt;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) return std::nullopt;
  ToolCall c;
  c.id = newCallId(format);
  c.name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  c.arguments = argumentsText(args == j.end() ? nlohmann::json() : *args);
  return c;
}

std::optional<ToolCall> callFromJson(std::string_view text, ToolCallFormat format = ToolCallFormat::kHermes) {
  return callFromObject(nlohmann::json::parse(trim(text), nullptr, /*allow_exceptions=*/false), format);
}

// The end (one past the closing brace) of the JSON object that starts at text[0] == '{', found by
// counting braces outside strings; npos if it does not close.
size_t objectEnd(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

ToolCallResult parseHermes(std::string_view text) {
  const size_t first = text.find(kHermesStart);
  if (first == std::string_view::npos) return {std::string(text), {}};
  ToolCallResult r;
  for (size_t pos = first; pos != std::string_view::npos;) {
    const size_t body = pos + kHermesStart.size();
    const size_t end = text.find(kHermesEnd, body);
    auto call = callFromJson(text.substr(body, end == std::string_view::npos ? std::string_view::npos : end - body));
    if (!call) return {std::string(text), {}};
    r.calls.push_back(std::move(*call));
    if (end == std::string_view::npos) break;
    pos = text.find(kHermesStart, end + kHermesEnd.size());
  }
  r.content = std::string(text.substr(0, first));
  return r;
}

ToolCallResult parseLlama3Json(std::string_view text) {
  std::string_view t = trimLeft(text);
  if (t.starts_with(kPythonTag)) t = trimLeft(t.substr(kPythonTag.size()));
  if (!t.starts_with('{')) return {std::string(text), {}};
  ToolCallResult r;
  while (!t.empty()) {
    const size_t end = objectEnd(t);
    if (end == std::string_view::npos) return {std::string(text), {}};
    auto call = callFromJson(t.substr(0, end));
    if (!call) return {std::string(text), {}};
    r.calls.push_back(std::move(*call));
    t = trimLeft(t.substr(end));
    if (t.starts_with(';')) {
      t = trimLeft(t.substr(1));
      if (!t.starts_with('{') && !t.empty()) return {std::string(text), {}};
    } else if (!t.empty()) {
      return {std::string(text), {}};
    }
  }
  return r;
}

// [TOOL_CALLS][{...}, ...] or [TOOL_CALLS]name[CALL_ID]id?[ARGS]{...} per call.
ToolCallResult parseMistral(std::string_view text) {
  const size_t first = text.find(kMistralCalls);
  if (first == std::string_view::npos) return {std::string(text), {}};
  ToolCallResult r;
  std::string_view rest = trimLeft(text.substr(first + kMistralCalls.size()));
  if (rest.starts_with('[')) {  // one JSON array of calls
    const auto j = nlohmann::json::parse(trim(rest), nullptr, /*allow_exceptions=*/false);
    if (!j.is_array() || j.empty()) return {std::string(text), {}};
    for (const auto& item : j) {
      auto call = callFromObject(item, ToolCallFormat::kMistral);
      if (!call) return {std::string(text), {}};
      r.calls.push_back(std::move(*call));
    }
  } else {
    for (;;) {
      const size_t args = rest.find(kMistralArgs);
      if (args == std::string_view::npos) return {std::string(text), {}};
      std::string_view name = rest.substr(0, args);
      if (const size_t id = name.find(kMistralCallId); id != std::string_view::npos) name = name.substr(0, id);
      name = trim(name);
      std::string_view body = trimLeft(rest.substr(args + kMistralArgs.size()));
      const size_t end = body.starts_with('{') ? objectEnd(body) : std::string_view::npos;
      if (name.empty() || end == std::string_view::npos) return {std::string(text), {}};
      const auto a = nlohmann::json::parse(body.substr(0, end), nullptr, /*allow_exceptions=*/false);
      if (!a.is_object()) return {std::string(text), {}};
      r.calls.push_back(ToolCall{newCallId(ToolCallFormat::kMistral), std::string(name), argumentsText(a)});
      rest = trimLeft(body.substr(end));
      if (rest.empty()) break;
      if (!rest.starts_with(kMistralCalls)) return {std::string(text), {}};
      rest = trimLeft(rest.substr(kMistralCalls.size()));
    }
  }
  r.content = std::string(text.substr(0, first));
  return r;
}

// Python literals and calls, as far as a pythonic tool call writes them.
class PythonReader {
 public:
  explicit PythonReader(std::string_view s) : s_(s) {}

  // [f(a=1, b="x"), g()] -> calls; false if the text is anything else.
  bool calls(std::vector<ToolCall>* out) {
    if (!eat('[')) return false;
    if (eat(']')) return false;  // no calls
    do {
      ToolCall c;
      if (!name(&c.name) || !eat('(')) return false;
      nlohmann::json args = nlohmann::json::object();
      if (!eat(')')) {
        do {
          std::string key;
          nlohmann::json v;
          if (!name(&key) || !eat('=') || !value(&v, 0)) return false;
          args[key] = std::move(v);
        } while (eat(','));
        if (!eat(')')) return false;
      }
      c.id = newCallId(ToolCallFormat::kPythonic);
      c.arguments = argumentsText(args);
      out->push_back(std::move(c));
    } while (eat(','));
    if (!eat(']')) return false;
    skipSpace();
    return i_ == s_.size();
  }

 private:
  void skipSpace() {
    while (i_ < s_.size() && isSpace(s_[i_])) ++i_;
  }
  bool eat(char c) {
    skipSpace();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  static bool nameChar(char c, bool first) {
    return c == '_' || std::isalpha(static_cast<unsigned char>(c)) ||
           (!first && (std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-'));
  }
  bool name(std::string* out) {
    skipSpace();
    const size_t b = i_;
    while (i_ < s_.size() && nameChar(s_[i_], i_ == b)) ++i_;
    *out = std::string(s_.substr(b, i_ - b));
    return i_ > b;
  }
  bool value(nlohmann::json* out, int depth) {
    if (depth > 64) return false;
    skipSpace();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"' || c == '\'') return string(out);
    if (c == '[' || c == '(') {  // a list (a tuple reads as one too)
      const char close = c == '[' ? ']' : ')';
      ++i_;
      *out = nlohmann::json::array();
      if (eat(close)) return true;
      do {
        if (eat(close)) return true;  // a trailing comma
        nlohmann::json v;
        if (!value(&v, depth + 1)) return false;
        out->push_back(std::move(v));
      } while (eat(','));
      return eat(close);
    }
    if (c == '{') {
      ++i_;
      *out = nlohmann::json::object();
      if (eat('}')) return true;
      do {
        if (eat('}')) return true;
        nlohmann::json k, v;
        if (!value(&k, depth + 1) || !k.is_string() || !eat(':') || !value(&v, depth + 1)) return false;
        (*out)[k.get<std::string>()] = std::move(v);
      } while (eat(','));
      return eat('}');
    }
    std::string word;
    const size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '-' ||
                              s_[i_] == '+' || s_[i_] == '_')) {
      ++i_;
    }
    word = std::string(s_.substr(b, i_ - b));
    if (word == "True") *out = true;
    else if (word == "False") *out = false;
    else if (word == "None") *out = nullptr;
    else {
      *out = nlohmann::json::parse(word, nullptr, /*allow_exceptions=*/false);
      if (!out->is_number()) return false;
    }
    return true;
  }
  // '...' or "..." with Python's common escapes.
  bool string(nlohmann::json* out) {
    const char quote = s_[i_++];
    std::string v;
    while (i_ < s_.size() && s_[i_] != quote) {
      char c = s_[i_++];
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case '0': c = '\0'; break;
          default: c = e;  // \\, \', \" and anything else as itself
        }
      }
      v += c;
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    *out = std::move(v);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

ToolCallResult parsePythonic(std::string_view text) {
  std::string_view t = trim(text);
  if (t.starts_with(kPythonStart)) {
    t.remove_prefix(kPythonStart.size());
    if (t.ends_with(kPythonEnd)) t.remove_suffix(kPythonEnd.size());
    t = trim(t);
  }
  if (!t.starts_with('[')) return {std::string(text), {}};
  ToolCallResult r;
  if (!PythonReader(t).calls(&r.calls)) return {std::string(text), {}};
  return r;
}

}  // namespace

Result<ToolCallFormat> toolCallFormatByName(std::string_view name) {
  if (name == "hermes") return ToolCallFormat::kHermes;
  if (name == "llama3_json") return ToolCallFormat::kLlama3Json;
  if (name == "mistral") return ToolCallFormat::kMistral;
  if (name == "pythonic") return ToolCallFormat::kPythonic;
  return invalidArgument("unknown tool call parser '" + std::string(name) + "' (known: " +
                         std::string(kToolCallFormatNames) + ")");
}

std::vector<std::string_view> toolCallMarkers(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes: return {kHermesStart, kHermesEnd};
    case ToolCallFormat::kLlama3Json: return {kPythonTag};
    case ToolCallFormat::kMistral: return {kMistralCalls, kMistralArgs, kMistralCallId};
    case ToolCallFormat::kPythonic: return {kPythonStart, kPythonEnd};
  }
  return {};
}

ToolCallResult parseToolCalls(ToolCallFormat format, std::string_view text) {
  switch (format) {
    case ToolCallFormat::kHermes: return parseHermes(text);
    case ToolCallFormat::kLlama3Json: return parseLlama3Json(text);
    case ToolCallFormat::kMistral: return parseMistral(text);
    case ToolCallFormat::kPythonic: return parsePythonic(text);
  }
  return {std::string(text), {}};
}

ToolCallResult parseForcedToolCalls(std::string_view text, const std::string& function) {
  using Ordered = nlohmann::ordered_json;
  const Ordered j = Ordered::parse(trim(text), nullptr, /*allow_exceptions=*/false);
  ToolCallResult r;
  if (!function.empty() && j.is_object()) {
    r.calls.push_back({newCallId(ToolCallFormat::kHermes), function, j.dump()});
    return r;
  }
  if (function.empty() && j.is_array() && !j.empty()) {
    for (const Ordered& c : j) {
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) return {std::string(text), {}};
      const auto args = c.find("parameters");
      r.calls.push_back({newCallId(ToolCallFormat::kHermes), c["name"].get<std::string>(),
                         args == c.end() ? "{}" : args->dump()});
    }
    return r;
  }
  return {std::string(text), {}};
}

std::string ToolCallStream::push(std::string_view text) {
  if (calls_ || forced_) {
    held_ += text;
    return {};
  }
  held_ += text;
  std::string out;
  if (format_ == ToolCallFormat::kHermes || format_ == ToolCallFormat::kMistral) {
    // Content until the first call's marker.
    const std::string_view start = format_ == ToolCallFormat::kHermes ? kHermesStart : kMistralCalls;
    if (const size_t p = held_.find(start); p != std::string::npos) {
      out = held_.substr(0, p);
      held_.erase(0, p);
      calls_ = true;
      return out;
    }
    const size_t keep = heldMarkerPrefix(held_, start);
    out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  // llama3_json, pythonic: the first non-space character decides (a partial tag waits).
  if (decided_) {
    out.swap(held_);
    return out;
  }
  const bool json = format_ == ToolCallFormat::kLlama3Json;
  const std::string_view tag = json ? kPythonTag : kPythonStart;
  const std::string_view t = trimLeft(held_);
  if (t.empty() || (t.size() < tag.size() && tag.starts_with(t))) return {};
  decided_ = true;
  if (t.starts_with(json ? '{' : '[') || t.starts_with(tag)) {
    calls_ = true;
    return {};
  }
  out.swap(held_);
  return out;
}

ToolCallResult ToolCallStream::finish() {
  std::string held = std::move(held_);
  held_.clear();
  if (forced_) return parseForcedToolCalls(held, forced_function_);
  if (!calls_) return {std::move(held), {}};
  return parseToolCalls(format_, held);
}

}  // namespace turbine::frontend
