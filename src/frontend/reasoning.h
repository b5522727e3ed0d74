// Reasoning ("thinking") in a chat model's output, split from the answer as vLLM's
// --reasoning-parser does, into the message's `reasoning_content`:
//   deepseek_r1: the output is reasoning up to "</think>", then the answer (DeepSeek R1 and its
//                distills, QwQ: their templates open "<think>" in the prompt; one the model writes
//                itself at the start is dropped). Without "</think>" all of it is reasoning.
//   qwen3:       reasoning only inside "<think>" ... "</think>" at the start of the output (Qwen3,
//                whose template opens none, or an empty one when thinking is off); output that
//                does not start with "<think>" is all answer. An unclosed one is reasoning to the
//                end.
// The split is the same whole or streamed (ReasoningStream holds back a partial tag only).
// Thread safety: a ReasoningStream is used by one thread at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace turbine::frontend {

enum class ReasoningFormat { kDeepSeekR1, kQwen3 };

// "deepseek_r1" or "qwen3"; InvalidArgument naming the known ones otherwise.
Result<ReasoningFormat> reasoningFormatByName(std::string_view name);
inline constexpr std::string_view kReasoningFormatNames = "deepseek_r1, qwen3";
// The tags, which a tokenizer may have as (special) tokens of their own.
std::vector<std::string_view> reasoningMarkers(ReasoningFormat format);

struct ReasoningSplit {
  std::string reasoning;
  std::string content;
};

class ReasoningStream {
 public:
  explicit ReasoningStream(ReasoningFormat format) : format_(format) {}
  // What `text` (appended to what came before) adds to each part, as far as it is certain now.
  ReasoningSplit push(std::string_view text);
  // At the end of the output: what was held back.
  ReasoningSplit finish();

 private:
  enum class State { kStart, kReasoning, kContent };
  ReasoningFormat format_;
  State state_ = State::kStart;
  std::string held_;  // a possible tag not complete yet (or, at the start, the leading text)
};

// The whole output at once (what the stream gives).
ReasoningSplit splitReasoning(ReasoningFormat format, std::string_view text);

}  // namespace turbine::frontend
