// OpenAI request parsing and validation: JSON body -> typed request, or a Status whose message
// says what is wrong plus the name of the offending field (`*error_param`, "messages[1].role").
// Rules follow the OpenAI API reference: wrong JSON types and out-of-range values are rejected
// (400), unknown fields are ignored, null means "not given". The common extensions of vLLM
// (top_k, min_p, repetition_penalty, ignore_eos, min_tokens, stop_token_ids, cache_salt,
// add_generation_prompt) are accepted too.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "frontend/backend.h"

namespace turbine::frontend {

inline constexpr int32_t kMaxChoices = 128;      // n
inline constexpr int32_t kMaxTopLogprobs = 20;   // chat top_logprobs, completions logprobs
inline constexpr size_t kMaxStopStrings = 16;

// Fields shared by chat and completions.
struct CommonParams {
  std::string model;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;            // stream_options.include_usage
  std::optional<int32_t> max_tokens;     // max_tokens or max_completion_tokens; unset = fill context
                                         // (0 only with completions' echo: the prompt alone)
  // vLLM's prompt_logprobs: each prompt token's logprob and its position's top k, in the
  // response (completions: per choice; chat: top level). Not with stream.
  std::optional<int32_t> prompt_logprobs;
  int32_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::string> stop;         // stop strings (frontend); empty ones dropped
  std::vector<int32_t> stop_token_ids;   // engine
  SamplingParams sampling;               // .logprobs set from the endpoint's own fields
  std::string user;
  std::string cache_salt;
  // Structured output (response_format json_object / json_schema, guided_json, guided_regex,
  // guided_choice, structured_outputs), already checked to compile.
  std::optional<structured::OutputConstraint> constraint;
};

struct ChatCompletionRequest {
  CommonParams common;
  std::vector<ChatMessage> messages;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;  // the tool definitions, for the template; null when none (or [])
  std::string tool_choice;       // "none", "auto", "required" or "function" (a named one)
  std::string named_tool;        // tool_choice "function": its name
  bool parallel_tool_calls = true;  // false: a choice returns the first of its calls only
  // tool_choice "required" and named functions set common.constraint to the calls' shape.
  // More template variables: chat_template_kwargs' keys (enable_thinking, ...) and documents.
  nlohmann::ordered_json template_extra = nlohmann::ordered_json::object();
};

struct PromptInput {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> token_ids;
};

struct CompletionRequest {
  CommonParams common;
  std::vector<PromptInput> prompts;    // one per prompt; choices are prompt-major
  std::optional<int32_t> logprobs;     // top-k count, 0..kMaxTopLogprobs
  bool echo = false;                   // with logprobs: the prompt's tokens get logprobs too
};

// True if `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool isValidUtf8(std::string_view text);

// Parses a request body as one JSON object (rejects invalid UTF-8 with a clear message).
Result<nlohmann::json> parseJsonObject(std::string_view body);

// `raw`: the body's text, when the caller has it: the tools, tool calls and template variables
// then keep the client's key order (what the template prints); without it they are sorted.
Result<ChatCompletionRequest> parseChatCompletionRequest(const nlohmann::json& body,
                                                         std::string* error_param, std::string_view raw = {});
Result<CompletionRequest> parseCompletionRequest(const nlohmann::json& body,
                                                 std::string* error_param, std::string_view raw = {});

// "tools" of a request body (/tokenize with messages): validated, in the key order of `raw` (the
// body's text); null when absent or empty.
Result<nlohmann::ordered_json> parseTools(const nlohmann::json& body, std::string_view raw,
                                          std::string* error_param);
// The template variables of a request body (chat or /tokenize): chat_template_kwargs' keys (an
// object; the template's own variables — messages, tools, add_generation_prompt, bos_token,
// eos_token — refused) and documents (an array of objects); in the key order of `raw` when given.
Result<nlohmann::ordered_json> parseTemplateExtra(const nlohmann::json& body, std::string_view raw,
                                                  std::string* error_param);

// Message list of a chat request or a /tokenize request ("messages" field).
Result<std::vector<ChatMessage>> parseMessages(const nlohmann::json& value, std::string* error_param);

// Array of token ids ("tokens" of /detokenize, token prompts); `param` names it in errors.
Result<std::vector<int32_t>> parseTokenIds(const nlohmann::json& value, const std::string& param,
                                           std::string* error_param);

}  // namespace turbine::frontend
