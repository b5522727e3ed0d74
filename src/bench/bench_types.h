// Value types shared by the `turbine bench` load generator: what one request asks for
// (RequestSpec, produced by a Workload) and what the client measured for it (RequestResult).
// All times are client-side wall-clock (steady clock) measurements; no type here is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace turbine::bench {

enum class Endpoint { kCompletions, kChat };

// A run of `count` prompt units (token ids, or words in text mode) drawn deterministically from
// `key`: unit i of a segment depends only on (key, i). Equal keys give equal units; different keys
// give different units (with overwhelming probability).
struct PromptSegment {
  uint64_t key = 0;
  int32_t count = 0;
};

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct RequestSpec {
  uint64_t id = 0;
  double arrival_s = -1.0;  // offset from the start of the run; < 0: as soon as a slot is free
  std::vector<PromptSegment> segments;  // the prompt (completions), or the last user turn (chat)
  std::vector<ChatMessage> history;     // chat: earlier messages; the new user turn is appended
  int32_t input_tokens = 0;   // intended prompt length in tokens (the last turn for chat)
  int32_t output_tokens = 0;  // max_tokens, sent with ignore_eos so it is exact
  int32_t user = -1;          // multiturn: the user id; -1 otherwise
  int32_t turn = 0;           // multiturn: 0-based turn index
};

struct RequestResult {
  uint64_t id = 0;
  int32_t user = -1;
  int32_t turn = 0;
  int http_status = 0;     // 0: no HTTP response (connect error, timeout)
  std::string error_kind;  // empty when ok; else "http_<status>", "connect", "timeout", "io", "stream"
  std::string error;       // one line, human readable
  double start_s = 0.0;    // when the request was sent, seconds from the start of the run
  double ttft_ms = -1.0;   // first content chunk; -1 when none arrived
  double e2e_ms = -1.0;    // end of stream ([DONE] or end of body)
  std::vector<double> itl_ms;  // gaps between consecutive content chunks
  int32_t input_tokens_requested = 0;
  int32_t output_tokens_requested = 0;
  int32_t prompt_tokens = -1;      // usage.prompt_tokens; -1: not reported
  int32_t completion_tokens = -1;  // usage.completion_tokens; -1: not reported
  int32_t cached_tokens = -1;      // usage.prompt_tokens_details.cached_tokens; -1: not reported
  int32_t chunks = 0;              // SSE events that carried content
  std::string output_text;         // generated text (kept for multiturn only)

  bool ok() const { return error_kind.empty(); }
  // Output tokens: usage when reported, else the number of content chunks.
  int32_t outputTokens() const { return completion_tokens >= 0 ? completion_tokens : chunks; }
  // Mean time per output token after the first, ms; -1 with fewer than two tokens.
  double tpotMs() const;
};

}  // namespace turbine::bench
