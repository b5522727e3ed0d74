#include "frontend/tool_calls.h"

#include <optional>
#include <random>

#include <nlohmann/json.hpp>

namespace turbine::frontend {
namespace {

constexpr std::string_view kHermesStart = "<tool_call>";
constexpr std::string_view kHermesEnd = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";

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

std::string newCallId() {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof kChars - 1)];
  return id;
}

// One call from its JSON object text: {"name": "...", "arguments" (or "parameters"): {...}}.
std::optional<ToolCall> callFromJson(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(trim(text), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) return std::nullopt;
  ToolCall c;
  c.id = newCallId();
  c.name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  if (args == j.end() || args->is_null()) {
    c.arguments = "{}";
  } else if (args->is_string()) {  // already serialized by the model
    c.arguments = args->get<std::string>();
  } else {
    c.arguments = args->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return c;
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

// The length of the longest proper suffix of `s` that is a prefix of `marker`.
size_t partialMarker(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n) {
    if (marker.starts_with(s.substr(s.size() - n))) return n;
  }
  return 0;
}

}  // namespace

Result<ToolCallFormat> toolCallFormatByName(std::string_view name) {
  if (name == "hermes") return ToolCallFormat::kHermes;
  if (name == "llama3_json") return ToolCallFormat::kLlama3Json;
  return invalidArgument("unknown tool call parser '" + std::string(name) + "' (known: " +
                         std::string(kToolCallFormatNames) + ")");
}

ToolCallResult parseToolCalls(ToolCallFormat format, std::string_view text) {
  return format == ToolCallFormat::kHermes ? parseHermes(text) : parseLlama3Json(text);
}

std::string ToolCallStream::push(std::string_view text) {
  if (calls_) {
    held_ += text;
    return {};
  }
  held_ += text;
  std::string out;
  if (format_ == ToolCallFormat::kHermes) {
    if (const size_t p = held_.find(kHermesStart); p != std::string::npos) {
      out = held_.substr(0, p);
      held_.erase(0, p);
      calls_ = true;
      return out;
    }
    const size_t keep = partialMarker(held_, kHermesStart);
    out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  // llama3_json: the first non-space character decides (a partial <|python_tag|> waits).
  if (decided_) {
    out.swap(held_);
    return out;
  }
  const std::string_view t = trimLeft(held_);
  if (t.empty() || (t.size() < kPythonTag.size() && kPythonTag.starts_with(t))) return {};
  decided_ = true;
  if (t.starts_with('{') || t.starts_with(kPythonTag)) {
    calls_ = true;
    return {};
  }
  out.swap(held_);
  return out;
}

ToolCallResult ToolCallStream::finish() {
  std::string held = std::move(held_);
  held_.clear();
  if (!calls_) return {std::move(held), {}};
  return parseToolCalls(format_, held);
}

}  // namespace turbine::frontend
