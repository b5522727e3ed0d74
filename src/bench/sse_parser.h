// SseParser: incremental parser of an OpenAI-style Server-Sent-Events stream
// (`data: {json}\n\n` events ending with `data: [DONE]`), fed the raw body bytes as they arrive.
// It extracts, per event, the generated text (completions `choices[0].text`, chat
// `choices[0].delta.content`), usage (prompt/completion/cached tokens) and an in-stream error.
// The framing (events split across reads, "\r\n" line ends) is common/sse.h's.
// Thread safety: none (one parser per stream).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sse.h"

namespace turbine::bench {

struct SseEvent {
  std::string text;            // content carried by this event ("" for role/usage-only events)
  bool has_content = false;    // text non-empty
  bool done = false;           // the `[DONE]` sentinel
  std::optional<int32_t> prompt_tokens, completion_tokens, cached_tokens;
  std::string error;           // an `error` object's message, or a JSON parse failure
};

class SseParser {
 public:
  // Appends bytes and returns every event completed by them, in order.
  std::vector<SseEvent> feed(std::string_view bytes);
  // Bytes held back that do not yet form a complete event.
  size_t pending() const { return framer_.pending(); }

 private:
  static SseEvent parseData(const std::string& data);  // one event's data
  SseFramer framer_;
};

}  // namespace turbine::bench
