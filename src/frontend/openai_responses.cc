#include "frontend/openai_responses.h"

#include <fmt/format.h>

namespace turbine::frontend {
namespace {

constexpr const char* kHex = "0123456789abcdef";

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not valid.
size_t validSequenceLength(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void appendFloat(std::string& out, float v) {
  if (!(v == v)) {
    out += "null";
    return;
  }
  if (v < -9999.0f) v = -9999.0f;  // -inf logprobs are clamped the way OpenAI does
  fmt::format_to(std::back_inserter(out), "{}", v);
}

void appendHead(std::string& out, const ResponseMeta& meta, std::string_view object) {
  out += "{\"id\":";
  appendJsonString(out, meta.id);
  out += ",\"object\":\"";
  out += object;
  out += "\",\"created\":";
  fmt::format_to(std::back_inserter(out), "{}", meta.created);
  out += ",\"model\":";
  appendJsonString(out, meta.model);
}

void appendBytes(std::string& out, std::string_view token) {
  out += '[';
  for (size_t i = 0; i < token.size(); ++i) {
    if (i > 0) out += ',';
    fmt::format_to(std::back_inserter(out), "{}", static_cast<unsigned char>(token[i]));
  }
  out += ']';
}

// "token":..,"logprob":..,"bytes":[..] of one chat logprob entry (the braces are the caller's).
void appendTokenLogprobFields(std::string& out, std::string_view token, float logprob) {
  out += "\"token\":";
  appendJsonString(out, token);
  out += ",\"logprob\":";
  appendFloat(out, logprob);
  out += ",\"bytes\":";
  appendBytes(out, token);
}

// Chat form: {"content":[{"token","logprob","bytes","top_logprobs":[...]}]}
void appendChatLogprobs(std::string& out, bool has, const std::vector<LogprobEntry>& entries) {
  if (!has) {
    out += "null";
    return;
  }
  out += "{\"content\":[";
  for (size_t i = 0; i < entries.size(); ++i) {
    const LogprobEntry& e = entries[i];
    if (i > 0) out += ',';
    out += '{';
    appendTokenLogprobFields(out, e.token, e.logprob);
    out += ",\"top_logprobs\":[";
    for (size_t k = 0; k < e.top.size(); ++k) {
      if (k > 0) out += ',';
      out += '{';
      appendTokenLogprobFields(out, e.top[k].first, e.top[k].second);
      out += '}';
    }
    out += "]}";
  }
  out += "]}";
}

// Completions (legacy) form: {"tokens","token_logprobs","top_logprobs","text_offset"}
void appendCompletionLogprobs(std::string& out, bool has, const std::vector<LogprobEntry>& e) {
  if (!has) {
    out += "null";
    return;
  }
  out += "{\"tokens\":[";
  for (size_t i = 0; i < e.size(); ++i) {
    if (i > 0) out += ',';
    appendJsonString(out, e[i].token);
  }
  out += "],\"token_logprobs\":[";
  for (size_t i = 0; i < e.size(); ++i) {
    if (i > 0) out += ',';
    if (e[i].is_null) {
      out += "null";
    } else {
      appendFloat(out, e[i].logprob);
    }
  }
  out += "],\"top_logprobs\":[";
  for (size_t i = 0; i < e.size(); ++i) {
    if (i > 0) out += ',';
    if (e[i].is_null) {
      out += "null";
      continue;
    }
    out += '{';
    bool chosen_listed = false;
    for (size_t k = 0; k < e[i].top.size(); ++k) {
      if (k > 0) out += ',';
      appendJsonString(out, e[i].top[k].first);
      out += ':';
      appendFloat(out, e[i].top[k].second);
      chosen_listed = chosen_listed || e[i].top[k].first == e[i].token;
    }
    if (!chosen_listed) {  // as OpenAI and vLLM: the chosen token too, so up to logprobs + 1 entries
      if (!e[i].top.empty()) out += ',';
      appendJsonString(out, e[i].token);
      out += ':';
      appendFloat(out, e[i].logprob);
    }
    out += '}';
  }
  out += "],\"text_offset\":[";
  for (size_t i = 0; i < e.size(); ++i) {
    if (i > 0) out += ',';
    fmt::format_to(std::back_inserter(out), "{}", e[i].text_offset);
  }
  out += "]}";
}

// vLLM's form: [null, {"<id>": {"logprob": .., "rank": .., "decoded_token": ..}, ..}, ..]
void appendPromptLogprobs(std::string& out, const std::vector<PromptLogprobPosition>& positions) {
  out += '[';
  for (size_t i = 0; i < positions.size(); ++i) {
    if (i > 0) out += ',';
    if (positions[i].empty()) {
      out += "null";
      continue;
    }
    out += '{';
    for (size_t k = 0; k < positions[i].size(); ++k) {
      const PromptLogprobToken& t = positions[i][k];
      if (k > 0) out += ',';
      fmt::format_to(std::back_inserter(out), "\"{}\":{{\"logprob\":", t.token_id);
      appendFloat(out, t.logprob);
      fmt::format_to(std::back_inserter(out), ",\"rank\":{},\"decoded_token\":", t.rank);
      appendJsonString(out, t.decoded);
      out += '}';
    }
    out += '}';
  }
  out += ']';
}

void appendFinish(std::string& out, std::string_view finish) {
  out += ",\"finish_reason\":";
  if (finish.empty()) {
    out += "null";
  } else {
    appendJsonString(out, finish);
  }
}

void appendUsage(std::string& out, const UsageInfo& u) {
  fmt::format_to(std::back_inserter(out),
                 "{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},"
                 "\"prompt_tokens_details\":{{\"cached_tokens\":{}}}}}",
                 u.prompt_tokens, u.completion_tokens, u.prompt_tokens + u.completion_tokens,
                 u.cached_tokens);
}

void appendTail(std::string& out, const ResponseMeta& meta) {
  out += ']';
  if (meta.usage_field) out += ",\"usage\":null";
  out += '}';
}

// [{"index"?, "id", "type": "function", "function": {"name", "arguments"}}, ...] ("index" in
// stream deltas).
void appendToolCalls(std::string& out, const std::vector<ToolCall>& calls, bool with_index) {
  out += '[';
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i > 0) out += ',';
    out += '{';
    if (with_index) fmt::format_to(std::back_inserter(out), "\"index\":{},", i);
    out += "\"id\":";
    appendJsonString(out, calls[i].id);
    out += ",\"type\":\"function\",\"function\":{\"name\":";
    appendJsonString(out, calls[i].name);
    out += ",\"arguments\":";
    appendJsonString(out, calls[i].arguments);
    out += "}}";
  }
  out += ']';
}

std::string frame(std::string json) {
  std::string out;
  out.reserve(json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
  return out;
}

}  // namespace

// True for bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'.
static bool isPlainJsonByte(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && isPlainJsonByte(static_cast<unsigned char>(s[run]))) ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);  // the common case: one append for the whole run
      i = run;
      continue;
    }
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = validSequenceLength(s, i);
      if (len == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for a byte that does not start a valid sequence
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

std::string chatCompletionJson(const ResponseMeta& meta, const std::vector<ChoiceOutput>& choices,
                               const UsageInfo& usage) {
  std::string out;
  appendHead(out, meta, "chat.completion");
  out += ",\"choices\":[";
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& c = choices[i];
    if (i > 0) out += ',';
    fmt::format_to(std::back_inserter(out), "{{\"index\":{},\"message\":{{\"role\":\"assistant\",\"content\":", c.index);
    if (c.text.empty() && !c.tool_calls.empty()) {
      out += "null";
    } else {
      appendJsonString(out, c.text);
    }
    if (!c.reasoning.empty()) {
      out += ",\"reasoning_content\":";
      appendJsonString(out, c.reasoning);
    }
    if (!c.tool_calls.empty()) {
      out += ",\"tool_calls\":";
      appendToolCalls(out, c.tool_calls, false);
    }
    out += "},\"logprobs\":";
    appendChatLogprobs(out, c.has_logprobs, c.logprobs);
    appendFinish(out, c.finish_reason);
    out += '}';
  }
  out += "],\"usage\":";
  appendUsage(out, usage);
  if (!choices.empty() && choices[0].prompt_logprobs) {  // one prompt: the same for every choice
    out += ",\"prompt_logprobs\":";
    appendPromptLogprobs(out, *choices[0].prompt_logprobs);
  }
  out += '}';
  return out;
}

std::string completionJson(const ResponseMeta& meta, const std::vector<ChoiceOutput>& choices,
                           const UsageInfo& usage) {
  std::string out;
  appendHead(out, meta, "text_completion");
  out += ",\"choices\":[";
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& c = choices[i];
    if (i > 0) out += ',';
    out += "{\"index\":";
    fmt::format_to(std::back_inserter(out), "{}", c.index);
    out += ",\"text\":";
    appendJsonString(out, c.text);
    out += ",\"logprobs\":";
    appendCompletionLogprobs(out, c.has_logprobs, c.logprobs);
    appendFinish(out, c.finish_reason);
    if (c.prompt_logprobs) {
      out += ",\"prompt_logprobs\":";
      appendPromptLogprobs(out, *c.prompt_logprobs);
    }
    out += '}';
  }
  out += "],\"usage\":";
  appendUsage(out, usage);
  out += '}';
  return out;
}

std::string chatRoleEvent(const ResponseMeta& meta, int32_t index) {
  std::string out;
  appendHead(out, meta, "chat.completion.chunk");
  fmt::format_to(std::back_inserter(out),
                 ",\"choices\":[{{\"index\":{},\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},"
                 "\"logprobs\":null,\"finish_reason\":null}}",
                 index);
  appendTail(out, meta);
  return frame(std::move(out));
}

std::string chatDeltaEvent(const ResponseMeta& meta, int32_t index, std::string_view content,
                           bool has_logprobs, const std::vector<LogprobEntry>& logprobs) {
  std::string out;
  out.reserve(160 + content.size());
  appendHead(out, meta, "chat.completion.chunk");
  fmt::format_to(std::back_inserter(out), ",\"choices\":[{{\"index\":{},\"delta\":{{\"content\":", index);
  appendJsonString(out, content);
  out += "},\"logprobs\":";
  appendChatLogprobs(out, has_logprobs, logprobs);
  out += ",\"finish_reason\":null}";
  appendTail(out, meta);
  return frame(std::move(out));
}

// A chunk whose delta is {"<key>": value}, the value written by put(out).
template <class Put>
std::string chatDeltaWith(const ResponseMeta& meta, int32_t index, std::string_view key, Put&& put) {
  std::string out;
  appendHead(out, meta, "chat.completion.chunk");
  fmt::format_to(std::back_inserter(out), ",\"choices\":[{{\"index\":{},\"delta\":{{\"{}\":", index, key);
  put(out);
  out += "},\"logprobs\":null,\"finish_reason\":null}";
  appendTail(out, meta);
  return frame(std::move(out));
}

std::string chatToolCallsEvent(const ResponseMeta& meta, int32_t index, const std::vector<ToolCall>& calls) {
  return chatDeltaWith(meta, index, "tool_calls", [&](std::string& out) { appendToolCalls(out, calls, true); });
}

std::string chatReasoningDeltaEvent(const ResponseMeta& meta, int32_t index, std::string_view text) {
  return chatDeltaWith(meta, index, "reasoning_content", [&](std::string& out) { appendJsonString(out, text); });
}

std::string chatFinishEvent(const ResponseMeta& meta, int32_t index, std::string_view finish) {
  std::string out;
  appendHead(out, meta, "chat.completion.chunk");
  fmt::format_to(std::back_inserter(out), ",\"choices\":[{{\"index\":{},\"delta\":{{}},\"logprobs\":null", index);
  appendFinish(out, finish);
  out += '}';
  appendTail(out, meta);
  return frame(std::move(out));
}

std::string completionDeltaEvent(const ResponseMeta& meta, int32_t index, std::string_view text,
                                 bool has_logprobs, const std::vector<LogprobEntry>& logprobs,
                                 std::string_view finish) {
  std::string out;
  out.reserve(160 + text.size());
  appendHead(out, meta, "text_completion");
  fmt::format_to(std::back_inserter(out), ",\"choices\":[{{\"index\":{},\"text\":", index);
  appendJsonString(out, text);
  out += ",\"logprobs\":";
  appendCompletionLogprobs(out, has_logprobs, logprobs);
  appendFinish(out, finish);
  out += '}';
  appendTail(out, meta);
  return frame(std::move(out));
}

DeltaEventFormat chatDeltaFormat(const ResponseMeta& meta, int32_t index) {
  DeltaEventFormat f;
  f.prefix = "data: ";
  appendHead(f.prefix, meta, "chat.completion.chunk");
  fmt::format_to(std::back_inserter(f.prefix), ",\"choices\":[{{\"index\":{},\"delta\":{{\"content\":", index);
  f.suffix = "},\"logprobs\":null,\"finish_reason\":null}";
  appendTail(f.suffix, meta);
  f.suffix += "\n\n";
  return f;
}

DeltaEventFormat completionDeltaFormat(const ResponseMeta& meta, int32_t index) {
  DeltaEventFormat f;
  f.prefix = "data: ";
  appendHead(f.prefix, meta, "text_completion");
  fmt::format_to(std::back_inserter(f.prefix), ",\"choices\":[{{\"index\":{},\"text\":", index);
  f.suffix = ",\"logprobs\":null,\"finish_reason\":null}";
  appendTail(f.suffix, meta);
  f.suffix += "\n\n";
  return f;
}

void appendDeltaEvent(std::string& out, const DeltaEventFormat& format, std::string_view text) {
  out += format.prefix;
  appendJsonString(out, text);
  out += format.suffix;
}

std::string usageEvent(const ResponseMeta& meta, std::string_view object, const UsageInfo& usage) {
  std::string out;
  appendHead(out, meta, object);
  out += ",\"choices\":[],\"usage\":";
  appendUsage(out, usage);
  out += '}';
  return frame(std::move(out));
}

std::string errorEvent(const std::string& error_body) { return frame(error_body); }

}  // namespace turbine::frontend
