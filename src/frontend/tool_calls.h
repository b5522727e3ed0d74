// Tool calls in a chat model's output (OpenAI "tools" with tool_choice "auto"), read by one of
// the formats models are trained on, named as vLLM's --tool-call-parser names them:
//   hermes:      <tool_call>{"name": ..., "arguments": {...}}</tool_call>, one block per call, after
//                optional text (Qwen2.5 / Qwen3, Hermes 2 and 3, and most models whose template
//                writes <tool_call>); the text before the first block is the message's content,
//                text after the last block is dropped; an unterminated last block counts.
//   llama3_json: the whole output is one JSON object {"name": ..., "parameters" | "arguments":
//                {...}}, or several separated by ';', optionally after <|python_tag|> (Llama 3.1,
//                3.2, 3.3 with JSON tool calling); output that does not start with '{' is content.
//   mistral:     [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] (Mistral 7B v0.3, Nemo), or
//                [TOOL_CALLS]name[ARGS]{...} (optionally name[CALL_ID]id[ARGS]{...}), repeated per
//                call (Mistral Small 3.2, Magistral); text before the first marker is content.
//                Call ids are 9 letters and digits, the form Mistral's templates insist on.
//   pythonic:    the whole output is a Python list of calls with keyword arguments of literal
//                values, [get_weather(city="Paris", days=3), get_time()] (Llama 3.2, Llama 4,
//                optionally inside <|python_start|> ... <|python_end|>); strings, numbers,
//                True / False / None, lists and dicts become JSON; output not starting with '['
//                is content.
// A marker that is a special token of the model's tokenizer ([TOOL_CALLS], <|python_tag|>) is
// skipped by the detokenizer; the frontend puts its text back (toolCallMarkers()).
// Output that looks like calls but does not parse (bad JSON, no "name") is content, unchanged.
// ToolCallStream does the same incrementally for streamed output: it passes content through as it
// comes and holds back from where a call may begin (a partial "<tool_call>" included) to the end.
// Thread safety: functions are pure; a ToolCallStream is used by one thread at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace turbine::frontend {

enum class ToolCallFormat { kHermes, kLlama3Json, kMistral, kPythonic };

// "hermes", "llama3_json", "mistral" or "pythonic"; InvalidArgument naming the known ones
// otherwise.
Result<ToolCallFormat> toolCallFormatByName(std::string_view name);
inline constexpr std::string_view kToolCallFormatNames = "hermes, llama3_json, mistral, pythonic";
// The marker strings of a format, which a tokenizer may have as (special) tokens of their own.
std::vector<std::string_view> toolCallMarkers(ToolCallFormat format);

struct ToolCall {
  std::string id;         // "call_" + 24 random letters and digits (mistral: 9 of them)
  std::string name;
  std::string arguments;  // a JSON object, as text
};

struct ToolCallResult {
  std::string content;          // the message's text outside the calls
  std::vector<ToolCall> calls;  // empty: the output had none (or they did not parse)
};

ToolCallResult parseToolCalls(ToolCallFormat format, std::string_view text);

// Calls forced by tool_choice, whose output guided decoding shaped: with `function` set (a named
// tool_choice) the whole output is that function's arguments object; otherwise ("required") it
// is a JSON array of {"name": ..., "parameters": {...}} objects. Keys keep the model's order.
// Output that does not parse (cut short by max_tokens) is content.
ToolCallResult parseForcedToolCalls(std::string_view text, const std::string& function);

class ToolCallStream {
 public:
  explicit ToolCallStream(ToolCallFormat format) : format_(format) {}
  // Calls forced by tool_choice (parseForcedToolCalls): everything is held to the end.
  static ToolCallStream forced(std::string function) {
    ToolCallStream s(ToolCallFormat::kHermes);
    s.forced_ = true;
    s.forced_function_ = std::move(function);
    return s;
  }
  // The part of `text` (appended to what came before) that is content for sure, to send now.
  std::string push(std::string_view text);
  // At the end of the output: what was held back, as content and calls.
  ToolCallResult finish();

 private:
  ToolCallFormat format_;
  std::string held_;     // not sent yet: a possible start of a call, or everything after one
  bool calls_ = false;   // held_ starts a call: hold everything to the end
  bool decided_ = false; // llama3_json, pythonic: the output's first non-space character was seen
  bool forced_ = false;
  std::string forced_function_;  // forced_: the named function, "" for a "required" list
};

}  // namespace turbine::frontend
