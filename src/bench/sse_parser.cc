#include "bench/sse_parser.h"

#include <nlohmann/json.hpp>

namespace turbine::bench {
namespace {

// Position just past the first blank line (event separator) at or after `from`, and where the
// event itself ends; npos when the buffer holds no complete event.
std::pair<size_t, size_t> findEventEnd(const std::string& b, size_t from) {
  for (size_t i = b.find('\n', from); i != std::string::npos; i = b.find('\n', i + 1)) {
    size_t j = i + 1;
    if (j < b.size() && b[j] == '\r') ++j;
    if (j < b.size() && b[j] == '\n') return {i, j + 1};
  }
  return {std::string::npos, std::string::npos};
}

std::optional<int32_t> intField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return static_cast<int32_t>(it->get<int64_t>());
}

void readUsage(const nlohmann::json& u, SseEvent& e) {
  if (!u.is_object()) return;
  e.prompt_tokens = intField(u, "prompt_tokens");
  e.completion_tokens = intField(u, "completion_tokens");
  auto d = u.find("prompt_tokens_details");
  if (d != u.end() && d->is_object()) e.cached_tokens = intField(*d, "cached_tokens");
}

void readChoice(const nlohmann::json& c, SseEvent& e) {
  auto t = c.find("text");
  if (t != c.end() && t->is_string()) e.text = t->get<std::string>();
  auto d = c.find("delta");
  if (d != c.end() && d->is_object()) {
    for (const char* key : {"content", "reasoning_content"}) {
      auto ct = d->find(key);
      if (ct != d->end() && ct->is_string()) e.text += ct->get<std::string>();
    }
  }
}

}  // namespace

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
  std::vector<SseEvent> out;
  buf_.append(bytes);
  for (;;) {
    auto [end, next] = findEventEnd(buf_, pos_);
    if (end == std::string::npos) break;
    SseEvent e = parseEvent(std::string_view(buf_).substr(pos_, end - pos_));
    pos_ = next;
    if (e.has_content || e.done || !e.error.empty() || e.prompt_tokens || e.completion_tokens) {
      out.push_back(std::move(e));
    }
  }
  if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return out;
}

SseEvent SseParser::parseEvent(std::string_view event) {
  // Concatenate the event's `data:` lines (comments and other fields are ignored).
  std::string data;
  size_t p = 0;
  while (p < event.size()) {
    size_t nl = event.find('\n', p);
    std::string_view line = event.substr(p, nl == std::string_view::npos ? nl : nl - p);
    p = nl == std::string_view::npos ? event.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 5) != "data:") continue;
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (!data.empty()) data.push_back('\n');
    data.append(line);
  }
  SseEvent e;
  if (data.empty()) return e;
  if (data == "[DONE]") {
    e.done = true;
    return e;
  }
  nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    e.error = "malformed SSE data: " + data.substr(0, 120);
    return e;
  }
  if (auto err = j.find("error"); err != j.end()) {
    e.error = err->is_object() && err->contains("message") && (*err)["message"].is_string()
                  ? (*err)["message"].get<std::string>()
                  : err->dump();
    return e;
  }
  if (auto ch = j.find("choices"); ch != j.end() && ch->is_array() && !ch->empty()) {
    readChoice((*ch)[0], e);
  }
  if (auto u = j.find("usage"); u != j.end()) readUsage(*u, e);
  e.has_content = !e.text.empty();
  return e;
}

}  // namespace turbine::bench
