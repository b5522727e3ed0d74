// ChatTemplate: renders a model's chat template (the Jinja2 `chat_template` of its
// tokenizer_config.json) into the prompt text, byte-identical to Hugging Face transformers'
// apply_chat_template (Jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, tojson with ensure_ascii=False, raise_exception, strftime_now).
//
// Key order matters for byte identity (`tools | tojson` prints keys in the order the client sent
// them): pass nlohmann::ordered_json to keep it; nlohmann::json sorts object keys.
//
// Thread safety: a ChatTemplate is immutable after parse() (setClock() included, call it first);
// render() may run on many threads at once.
#pragma once

#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "model/jinja/template.h"

namespace turbine::model {

// One OpenAI-style chat message.
struct ChatMessage {
  std::string role;
  nlohmann::json content;  // a string, or an array of {"type": "text", "text": ...} parts, or null
  nlohmann::json extra;    // other fields merged into the message object: tool_calls, name, ...
};

// The messages array a template sees: [{"role", "content", ...extra}].
nlohmann::ordered_json chatMessagesToJson(const std::vector<ChatMessage>& messages);

class ChatTemplate {
 public:
  // Errors: InvalidArgument "chat template: line N: <what>" on a syntax error.
  static Result<ChatTemplate> parse(std::string source);

  // Renders with the variables messages, add_generation_prompt, bos_token, eos_token, tools
  // (None when null) and every key of extra_context (an object: enable_thinking, documents, ...).
  // Errors (InvalidArgument): the template's raise_exception("msg") gives exactly "msg" (the
  // server answers 400 with it); other template errors "chat template: line N: <what>".
  Result<std::string> render(const nlohmann::json& messages, bool add_generation_prompt, const std::string& bos_token,
                             const std::string& eos_token, const nlohmann::json& tools = nullptr,
                             const nlohmann::json& extra_context = nlohmann::json::object()) const;
  Result<std::string> render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                             const std::string& bos_token, const std::string& eos_token,
                             const nlohmann::ordered_json& tools,
                             const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;
  Result<std::string> render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                             const std::string& bos_token, const std::string& eos_token) const;

  // Replaces the clock behind strftime_now() (default: local time now). For tests.
  void setClock(std::function<std::tm()> now) { options_.now = std::move(now); }
  // Replaces the size / step / depth limits (defaults in jinja::RenderLimits).
  void setLimits(const jinja::RenderLimits& limits) { options_.limits = limits; }

  const std::string& source() const { return source_; }

 private:
  ChatTemplate(std::string source, jinja::Template tmpl) : source_(std::move(source)), template_(std::move(tmpl)) {}
  Result<std::string> renderValues(jinja::Value messages, bool add_generation_prompt, const std::string& bos_token,
                                   const std::string& eos_token, jinja::Value tools, jinja::Value extra) const;

  std::string source_;
  jinja::Template template_;
  jinja::RenderOptions options_;
};

}  // namespace turbine::model
