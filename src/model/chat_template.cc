#include "model/chat_template.h"

namespace turbine::model {

using jinja::Value;

nlohmann::ordered_json chatMessagesToJson(const std::vector<ChatMessage>& messages) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    nlohmann::ordered_json msg = nlohmann::ordered_json::object();
    msg["role"] = m.role;
    msg["content"] = nlohmann::ordered_json::parse(m.content.dump());
    if (m.extra.is_object()) {
      for (auto it = m.extra.begin(); it != m.extra.end(); ++it) {
        msg[it.key()] = nlohmann::ordered_json::parse(it.value().dump());
      }
    }
    out.push_back(std::move(msg));
  }
  return out;
}

Result<ChatTemplate> ChatTemplate::parse(std::string source) {
  auto tmpl = jinja::Template::parse(source);
  if (!tmpl.isOk()) return tmpl.status().withPrefix("chat template");
  return ChatTemplate(std::move(source), std::move(tmpl).value());
}

Result<std::string> ChatTemplate::renderValues(Value messages, bool add_generation_prompt,
                                               const std::string& bos_token, const std::string& eos_token,
                                               Value tools, Value extra) const {
  if (!messages.isList()) return invalidArgument("chat template: messages must be an array");
  if (!extra.isDict() && !extra.isNone()) return invalidArgument("chat template: extra context must be an object");
  jinja::ValuePairs vars;
  if (extra.isDict()) vars = extra.pairs();
  auto put = [&vars](const char* name, Value v) {
    for (auto& [k, old] : vars) {
      if (k.str() == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(Value(name), std::move(v));
  };
  put("messages", std::move(messages));
  put("add_generation_prompt", Value(add_generation_prompt));
  put("bos_token", Value(bos_token));
  put("eos_token", Value(eos_token));
  put("tools", std::move(tools));
  auto out = template_.render(Value::dict(std::move(vars)), options_);
  if (!out.isOk() && out.status().message().rfind("line ", 0) == 0) return out.status().withPrefix("chat template");
  return out;
}

Result<std::string> ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                         const std::string& bos_token, const std::string& eos_token,
                                         const nlohmann::json& tools, const nlohmann::json& extra_context) const {
  return renderValues(Value::fromJson(messages), add_generation_prompt, bos_token, eos_token, Value::fromJson(tools),
                      Value::fromJson(extra_context));
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                         const std::string& bos_token, const std::string& eos_token,
                                         const nlohmann::ordered_json& tools,
                                         const nlohmann::ordered_json& extra_context) const {
  return renderValues(Value::fromJson(messages), add_generation_prompt, bos_token, eos_token, Value::fromJson(tools),
                      Value::fromJson(extra_context));
}

Result<std::string> ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                         const std::string& bos_token, const std::string& eos_token) const {
  return render(chatMessagesToJson(messages), add_generation_prompt, bos_token, eos_token,
                nlohmann::ordered_json(nullptr));
}

}  // namespace turbine::model
