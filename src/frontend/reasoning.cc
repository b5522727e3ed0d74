#include "frontend/reasoning.h"

#include "frontend/stop_strings.h"

namespace turbine::frontend {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

std::string_view trimLeft(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  return s;
}

}  // namespace

Result<ReasoningFormat> reasoningFormatByName(std::string_view name) {
  if (name == "deepseek_r1") return ReasoningFormat::kDeepSeekR1;
  if (name == "qwen3") return ReasoningFormat::kQwen3;
  return invalidArgument("unknown reasoning parser '" + std::string(name) + "' (known: " +
                         std::string(kReasoningFormatNames) + ")");
}

std::vector<std::string_view> reasoningMarkers(ReasoningFormat) { return {kOpen, kClose}; }

ReasoningSplit ReasoningStream::push(std::string_view text) {
  held_ += text;
  ReasoningSplit out;
  for (;;) {
    switch (state_) {
      case State::kStart: {  // does the output open with <think>?
        const std::string_view t = trimLeft(held_);
        if (t.size() < kOpen.size() && kOpen.starts_with(t)) return out;  // not known yet
        if (t.starts_with(kOpen)) {
          held_ = std::string(t.substr(kOpen.size()));
          state_ = State::kReasoning;
        } else {
          state_ = format_ == ReasoningFormat::kDeepSeekR1 ? State::kReasoning : State::kContent;
        }
        break;
      }
      case State::kReasoning: {
        if (const size_t p = held_.find(kClose); p != std::string::npos) {
          out.reasoning += held_.substr(0, p);
          held_.erase(0, p + kClose.size());
          state_ = State::kContent;
          break;
        }
        const size_t keep = heldMarkerPrefix(held_, kClose);
        out.reasoning += held_.substr(0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return out;
      }
      case State::kContent:
        out.content += held_;
        held_.clear();
        return out;
    }
  }
}

ReasoningSplit ReasoningStream::finish() {
  ReasoningSplit out;
  const bool reasoning = state_ == State::kReasoning ||
                         (state_ == State::kStart && format_ == ReasoningFormat::kDeepSeekR1);
  (reasoning ? out.reasoning : out.content) = std::move(held_);
  held_.clear();
  state_ = State::kContent;
  return out;
}

ReasoningSplit splitReasoning(ReasoningFormat format, std::string_view text) {
  ReasoningStream s(format);
  ReasoningSplit out = s.push(text);
  ReasoningSplit rest = s.finish();
  out.reasoning += rest.reasoning;
  out.content += rest.content;
  return out;
}

}  // namespace turbine::frontend
