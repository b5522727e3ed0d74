// Response and Server-Sent-Events JSON, framed exactly as the OpenAI API frames them.
// Key order is fixed (id, object, created, model, choices, usage) and text is escaped with
// invalid UTF-8 replaced by U+FFFD, so output is stable byte for byte.
// Chat stream:  data: {..."delta":{"role":"assistant","content":""}...}\n\n  (one per choice)
//               data: {..."delta":{"content":"Hel"}...}\n\n ...
//               data: {..."delta":{},"logprobs":null,"finish_reason":"stop"}\n\n
//               [data: {..."choices":[],"usage":{...}}\n\n]   (stream_options.include_usage)
//               data: [DONE]\n\n
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontend/tool_calls.h"

namespace turbine::frontend {

struct ResponseMeta {
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  bool usage_field = false;  // streams with include_usage carry "usage":null in every chunk
};

struct UsageInfo {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};

// One token's log-probability, text form. `token` holds the token's raw bytes.
struct LogprobEntry {
  std::string token;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;
  int64_t text_offset = 0;  // completions only: offset of the token in the choice's text
  bool is_null = false;     // completions' echo: the prompt's first token has no logprob (null)
};

// vLLM's prompt_logprobs: one prompt position's entry, {"<id>": {"logprob", "rank", "decoded_token"}}.
struct PromptLogprobToken {
  int32_t token_id = 0;
  float logprob = 0.0f;
  int32_t rank = 1;
  std::string decoded;  // the token's raw bytes
};
// The prompt token first, then the position's top k (without repeating it); empty = null (the
// prompt's first token).
using PromptLogprobPosition = std::vector<PromptLogprobToken>;

struct ChoiceOutput {
  int32_t index = 0;
  std::string text;
  std::string finish_reason;        // "stop", "length", "abort"; empty -> null
  bool has_logprobs = false;        // false -> "logprobs": null
  std::vector<LogprobEntry> logprobs;
  std::vector<ToolCall> tool_calls;  // chat: the message's "tool_calls" (content null when empty)
  std::string reasoning;             // chat: the message's "reasoning_content" (absent when empty)
  // "prompt_logprobs" (completions: in the choice; chat: at the top level, from the first choice).
  std::optional<std::vector<PromptLogprobPosition>> prompt_logprobs;
};

// Appends `text` as a JSON string literal (quotes included).
void appendJsonString(std::string& out, std::string_view text);

std::string chatCompletionJson(const ResponseMeta& meta, const std::vector<ChoiceOutput>& choices,
                               const UsageInfo& usage);
std::string completionJson(const ResponseMeta& meta, const std::vector<ChoiceOutput>& choices,
                           const UsageInfo& usage);

// Stream events, each already framed as "data: ...\n\n".
std::string chatRoleEvent(const ResponseMeta& meta, int32_t index);
// A content delta; `logprobs` may be empty (and has_logprobs false -> null).
std::string chatDeltaEvent(const ResponseMeta& meta, int32_t index, std::string_view content,
                           bool has_logprobs, const std::vector<LogprobEntry>& logprobs);
// A choice's tool calls, all in one delta: {"tool_calls": [{"index", "id", "type", "function":
// {"name", "arguments"}}]}.
std::string chatToolCallsEvent(const ResponseMeta& meta, int32_t index, const std::vector<ToolCall>& calls);
// A reasoning delta: {"reasoning_content": text} (--reasoning-parser).
std::string chatReasoningDeltaEvent(const ResponseMeta& meta, int32_t index, std::string_view text);
std::string chatFinishEvent(const ResponseMeta& meta, int32_t index, std::string_view finish);
std::string completionDeltaEvent(const ResponseMeta& meta, int32_t index, std::string_view text,
                                 bool has_logprobs, const std::vector<LogprobEntry>& logprobs,
                                 std::string_view finish);
// The plain content-delta event of one choice (no logprobs) split around its text, rendered
// once per sequence: an event is prefix + the text as a JSON string + suffix, byte for byte the
// same as chatDeltaEvent / completionDeltaEvent with has_logprobs false and no finish.
struct DeltaEventFormat {
  std::string prefix;  // "data: {...,"choices":[{"index":N,"delta":{"content":" (chat)
  std::string suffix;  // "},"logprobs":null,"finish_reason":null}]}\n\n" (chat)
};
DeltaEventFormat chatDeltaFormat(const ResponseMeta& meta, int32_t index);
DeltaEventFormat completionDeltaFormat(const ResponseMeta& meta, int32_t index);
// Appends one framed event to `out` (no allocation once `out` has the capacity).
void appendDeltaEvent(std::string& out, const DeltaEventFormat& format, std::string_view text);

// The final usage chunk: "choices": [] and the usage object. `object` is the chunk object name.
std::string usageEvent(const ResponseMeta& meta, std::string_view object, const UsageInfo& usage);
// A mid-stream error: data: {"error": {...}}\n\n
std::string errorEvent(const std::string& error_body);
inline constexpr std::string_view kDoneEvent = "data: [DONE]\n\n";

}  // namespace turbine::frontend
