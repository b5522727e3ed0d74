#include "bench/sse_parser.h"

#include <nlohmann/json.hpp>

namespace turbine::bench {
namespace {

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
  for (std::string& data : framer_.feed(bytes)) {
    SseEvent e = parseData(data);
    if (e.has_content || e.done || !e.error.empty() || e.prompt_tokens || e.completion_tokens) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

SseEvent SseParser::parseData(const std::string& data) {
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
