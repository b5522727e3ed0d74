#include "frontend/openai_protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "structured/constraint.h"
#include "structured/constraint_cache.h"

namespace turbine::frontend {
namespace {

using json = nlohmann::json;

std::string typeName(const json& v) {
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

// Reads typed fields of one JSON object; every failure names the field and sets *error_param.
class FieldReader {
 public:
  FieldReader(const json& obj, std::string prefix, std::string* error_param)
      : obj_(obj), prefix_(std::move(prefix)), error_param_(error_param) {}

  std::string name(std::string_view key) const { return prefix_ + std::string(key); }

  std::string* errorParam() const { return error_param_; }
  // Like fail(), for a full parameter path (no prefix added).
  Status failTopLevel(const std::string& param, const std::string& message) const {
    if (error_param_ != nullptr) *error_param_ = param;
    return invalidArgument(fmt::format("'{}': {}", param, message));
  }

  Status fail(std::string_view key, const std::string& message) const {
    std::string param = name(key);
    if (error_param_ != nullptr) *error_param_ = param;
    return invalidArgument(fmt::format("'{}': {}", param, message));
  }
  Status wrongType(std::string_view key, const json& v, std::string_view want) const {
    return fail(key, fmt::format("expected {}, got {}", want, typeName(v)));
  }

  // nullptr when absent or null.
  const json* get(std::string_view key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  Status readBool(std::string_view key, bool* out) const {
    const json* v = get(key);
    if (v == nullptr) return Status::ok();
    if (!v->is_boolean()) return wrongType(key, *v, "boolean");
    *out = v->get<bool>();
    return Status::ok();
  }

  Status readString(std::string_view key, std::string* out) const {
    const json* v = get(key);
    if (v == nullptr) return Status::ok();
    if (!v->is_string()) return wrongType(key, *v, "string");
    *out = v->get<std::string>();
    return Status::ok();
  }

  Status readInt(std::string_view key, int64_t lo, int64_t hi, std::optional<int64_t>* out) const {
    const json* v = get(key);
    if (v == nullptr) return Status::ok();
    if (!v->is_number_integer()) return wrongType(key, *v, "integer");
    bool too_big = v->is_number_unsigned() &&
                   v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    int64_t x = too_big ? std::numeric_limits<int64_t>::max() : v->get<int64_t>();
    if (too_big || x < lo || x > hi) {
      return fail(key, fmt::format("must be between {} and {}, got {}", lo, hi, v->dump()));
    }
    *out = x;
    return Status::ok();
  }

  template <typename T>
  Status readInt(std::string_view key, int64_t lo, int64_t hi, T* out) const {
    std::optional<int64_t> x;
    TURBINE_RETURN_IF_ERROR(readInt(key, lo, hi, &x));
    if (x) *out = static_cast<T>(*x);
    return Status::ok();
  }

  // Range [lo, hi], or (lo, hi] when lo_exclusive.
  Status readDouble(std::string_view key, double lo, double hi, double* out,
                    bool lo_exclusive = false) const {
    const json* v = get(key);
    if (v == nullptr) return Status::ok();
    if (!v->is_number()) return wrongType(key, *v, "number");
    double x = v->get<double>();
    bool below = lo_exclusive ? !(x > lo) : !(x >= lo);
    if (below || !(x <= hi) || !std::isfinite(x)) {
      return fail(key, fmt::format("must be {} {} and <= {}, got {}", lo_exclusive ? ">" : ">=",
                                   lo, hi, v->dump()));
    }
    *out = x;
    return Status::ok();
  }

 private:
  const json& obj_;
  std::string prefix_;
  std::string* error_param_;
};

nlohmann::ordered_json ordered(const json& v) { return nlohmann::ordered_json::parse(v.dump()); }

// The request body's text read again, keys in the order the client wrote them (the validating
// parse into `json` sorts them), for the fields a template prints (`tools | tojson`, ...). Parsed
// on first use only: requests without such fields pay nothing.
class ClientOrder {
 public:
  explicit ClientOrder(std::string_view raw) : raw_(raw) {}
  // The body's `key`, given `sorted` (the same field of the sorted parse) to fall back on when
  // there is no body text.
  nlohmann::ordered_json field(const char* key, const json& sorted) {
    const nlohmann::ordered_json& o = body();
    if (auto it = o.is_object() ? o.find(key) : o.end(); o.is_object() && it != o.end()) return *it;
    return ordered(sorted);
  }
  // messages[i]'s `key`, likewise.
  nlohmann::ordered_json messageField(size_t i, const char* key, const json& sorted) {
    const nlohmann::ordered_json& o = body();
    if (o.is_object()) {
      if (auto m = o.find("messages"); m != o.end() && m->is_array() && i < m->size() && (*m)[i].is_object()) {
        if (auto it = (*m)[i].find(key); it != (*m)[i].end()) return *it;
      }
    }
    return ordered(sorted);
  }

 private:
  const nlohmann::ordered_json& body() {
    if (!parsed_) {
      parsed_ = true;
      if (!raw_.empty()) body_ = nlohmann::ordered_json::parse(raw_, nullptr, /*allow_exceptions=*/false);
    }
    return body_;
  }
  std::string_view raw_;
  bool parsed_ = false;
  nlohmann::ordered_json body_;
};

Status readStop(const FieldReader& r, std::vector<std::string>* out) {
  const json* v = r.get("stop");
  if (v == nullptr) return Status::ok();
  if (v->is_string()) {
    out->push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) {
      return r.fail("stop", fmt::format("at most {} stop strings, got {}", kMaxStopStrings, v->size()));
    }
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) return r.wrongType(fmt::format("stop[{}]", i), (*v)[i], "string");
      out->push_back((*v)[i].get<std::string>());
    }
  } else {
    return r.wrongType("stop", *v, "string or array of strings");
  }
  std::erase_if(*out, [](const std::string& s) { return s.empty(); });
  return Status::ok();
}

Status readLogitBias(const FieldReader& r, std::map<int32_t, float>* out) {
  const json* v = r.get("logit_bias");
  if (v == nullptr) return Status::ok();
  if (!v->is_object()) return r.wrongType("logit_bias", *v, "object");
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& key = it.key();
    std::string field = "logit_bias." + key;
    char* end = nullptr;
    long id = std::strtol(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return r.fail(field, "keys must be token ids (non-negative integers)");
    }
    if (!it->is_number()) return r.wrongType(field, *it, "number");
    double bias = it->get<double>();
    if (!(bias >= -100.0 && bias <= 100.0)) {
      return r.fail(field, fmt::format("must be between -100 and 100, got {}", it->dump()));
    }
    (*out)[static_cast<int32_t>(id)] = static_cast<float>(bias);
  }
  return Status::ok();
}

// Whether a constraint compiles. Recent ones are checked once, not per request (a realistic
// schema takes ~150 us); the engine compiles its own copy.
Status checkConstraint(const structured::OutputConstraint& c) {
  static structured::ConstraintCache checked(64);
  auto compiled = checked.compile(c);
  return compiled.isOk() ? Status::ok() : compiled.status();
}

// The output constraint of response_format (OpenAI), guided_json / guided_regex / guided_choice /
// guided_grammar (vLLM), structured_outputs (vLLM's newer form) or regex / ebnf (SGLang): at most one per request, compiled here so
// that a bad schema or regex is a 400 naming the field before anything is routed.
Status readConstraint(const FieldReader& r, ClientOrder& order,
                      std::optional<structured::OutputConstraint>* out) {
  using Kind = structured::OutputConstraint::Kind;
  std::string field;
  auto set = [&](const std::string& name, Kind kind, std::string spec) -> Status {
    if (*out) {
      return r.fail(name, "cannot be combined with '" + field + "': one structured output constraint per request");
    }
    field = name;
    *out = structured::OutputConstraint{kind, std::move(spec)};
    return Status::ok();
  };
  auto schemaText = [&](const nlohmann::ordered_json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  if (const json* rf = r.get("response_format")) {
    if (!rf->is_object()) return r.wrongType("response_format", *rf, "object");
    FieldReader fr(*rf, "response_format.", r.errorParam());
    std::string type;
    if (fr.get("type") == nullptr) return fr.fail("type", "is required");
    TURBINE_RETURN_IF_ERROR(fr.readString("type", &type));
    if (type == "json_object") {
      TURBINE_RETURN_IF_ERROR(set("response_format", Kind::kJsonSchema, R"({"type":"object"})"));
    } else if (type == "json_schema") {
      const json* js = fr.get("json_schema");
      if (js == nullptr) return fr.fail("json_schema", "is required when type is 'json_schema'");
      if (!js->is_object()) return fr.wrongType("json_schema", *js, "object");
      FieldReader jr(*js, "response_format.json_schema.", r.errorParam());
      const json* schema = jr.get("schema");
      if (schema == nullptr) return jr.fail("schema", "is required");
      if (!schema->is_object() && !schema->is_boolean()) return jr.wrongType("schema", *schema, "object");
      const nlohmann::ordered_json ordered_rf = order.field("response_format", *rf);
      TURBINE_RETURN_IF_ERROR(set("response_format.json_schema.schema", Kind::kJsonSchema,
                                  ordered_rf["json_schema"]["schema"].dump()));
    } else if (type != "text") {
      return fr.fail("type", "must be 'text', 'json_object' or 'json_schema', got '" + type + "'");
    }
  }
  // vLLM's fields, top level (guided_*) or inside structured_outputs.
  auto readVllm = [&](const FieldReader& vr, const std::string& prefix, const char* json_key, const char* regex_key,
                      const char* choice_key, const char* grammar_key, const nlohmann::ordered_json& ordered) -> Status {
    if (const json* v = vr.get(json_key)) {
      if (!v->is_object() && !v->is_string() && !v->is_boolean()) return vr.wrongType(json_key, *v, "object or string");
      const bool have = ordered.is_object() && ordered.contains(json_key);
      const std::string spec = have ? schemaText(ordered[json_key]) : (v->is_string() ? v->get<std::string>() : v->dump());
      TURBINE_RETURN_IF_ERROR(set(prefix + json_key, Kind::kJsonSchema, spec));
    }
    if (const json* v = vr.get(regex_key)) {
      if (!v->is_string()) return vr.wrongType(regex_key, *v, "string");
      TURBINE_RETURN_IF_ERROR(set(prefix + regex_key, Kind::kRegex, v->get<std::string>()));
    }
    if (const json* v = vr.get(choice_key)) {
      if (!v->is_array() || v->empty()) return vr.wrongType(choice_key, *v, "non-empty array of strings");
      for (const json& c : *v) {
        if (!c.is_string()) return vr.wrongType(choice_key, *v, "non-empty array of strings");
      }
      TURBINE_RETURN_IF_ERROR(set(prefix + choice_key, Kind::kChoice, v->dump()));
    }
    if (const json* v = vr.get(grammar_key)) {
      if (!v->is_string()) return vr.wrongType(grammar_key, *v, "string");
      TURBINE_RETURN_IF_ERROR(set(prefix + grammar_key, Kind::kGrammar, v->get<std::string>()));
    }
    return Status::ok();
  };
  // SGLang's fields: `regex` and `ebnf` (a GBNF grammar), top level.
  if (const json* v = r.get("regex")) {
    if (!v->is_string()) return r.wrongType("regex", *v, "string");
    TURBINE_RETURN_IF_ERROR(set("regex", Kind::kRegex, v->get<std::string>()));
  }
  if (const json* v = r.get("ebnf")) {
    if (!v->is_string()) return r.wrongType("ebnf", *v, "string");
    TURBINE_RETURN_IF_ERROR(set("ebnf", Kind::kGrammar, v->get<std::string>()));
  }
  nlohmann::ordered_json top = nlohmann::ordered_json::object();  // guided_json in the client's key order
  if (const json* gj = r.get("guided_json")) top["guided_json"] = order.field("guided_json", *gj);
  TURBINE_RETURN_IF_ERROR(readVllm(r, "", "guided_json", "guided_regex", "guided_choice", "guided_grammar", top));
  if (const json* so = r.get("structured_outputs")) {
    if (!so->is_object()) return r.wrongType("structured_outputs", *so, "object");
    FieldReader sr(*so, "structured_outputs.", r.errorParam());
    TURBINE_RETURN_IF_ERROR(readVllm(sr, "structured_outputs.", "json", "regex", "choice", "grammar",
                                     order.field("structured_outputs", *so)));
    bool json_object = false;
    TURBINE_RETURN_IF_ERROR(sr.readBool("json_object", &json_object));
    if (json_object) TURBINE_RETURN_IF_ERROR(set("structured_outputs.json_object", Kind::kJsonSchema, R"({"type":"object"})"));
  }
  if (*out) {
    Status st = checkConstraint(**out);
    if (!st.isOk()) return r.failTopLevel(field, st.message());
  }
  return Status::ok();
}

// `min_max_tokens`: 0 for completions with echo (the prompt alone), else 1.
Status readCommon(const json& body, std::string* error_param, CommonParams* p, ClientOrder& order,
                  int64_t min_max_tokens = 1) {
  FieldReader r(body, "", error_param);
  const json* model = r.get("model");
  if (model == nullptr) return r.fail("model", "is required");
  TURBINE_RETURN_IF_ERROR(r.readString("model", &p->model));
  TURBINE_RETURN_IF_ERROR(r.readInt("n", 1, kMaxChoices, &p->n));
  TURBINE_RETURN_IF_ERROR(r.readBool("stream", &p->stream));
  if (const json* so = r.get("stream_options")) {
    if (!so->is_object()) return r.wrongType("stream_options", *so, "object");
    if (!p->stream) return r.fail("stream_options", "is only allowed when 'stream' is true");
    FieldReader sr(*so, "stream_options.", error_param);
    TURBINE_RETURN_IF_ERROR(sr.readBool("include_usage", &p->include_usage));
  }
  TURBINE_RETURN_IF_ERROR(readConstraint(r, order, &p->constraint));
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  std::optional<int64_t> max_tokens;
  TURBINE_RETURN_IF_ERROR(r.readInt("max_tokens", min_max_tokens, kIntMax, &max_tokens));
  std::optional<int64_t> max_completion;
  TURBINE_RETURN_IF_ERROR(r.readInt("max_completion_tokens", 1, kIntMax, &max_completion));
  if (max_completion) max_tokens = max_completion;
  if (max_tokens) p->max_tokens = static_cast<int32_t>(*max_tokens);
  TURBINE_RETURN_IF_ERROR(r.readInt("min_tokens", 0, kIntMax, &p->min_tokens));
  TURBINE_RETURN_IF_ERROR(r.readInt("prompt_logprobs", 0, kMaxTopLogprobs, &p->prompt_logprobs));
  if (p->prompt_logprobs && p->stream) return r.fail("prompt_logprobs", "is not available when 'stream' is true");
  if (p->prompt_logprobs) p->sampling.prompt_logprobs = *p->prompt_logprobs;
  if (p->max_tokens && p->min_tokens > *p->max_tokens) {
    return r.fail("min_tokens", fmt::format("must be <= max_tokens ({}), got {}", *p->max_tokens,
                                            p->min_tokens));
  }
  TURBINE_RETURN_IF_ERROR(r.readBool("ignore_eos", &p->ignore_eos));
  TURBINE_RETURN_IF_ERROR(readStop(r, &p->stop));
  if (const json* ids = r.get("stop_token_ids")) {
    auto parsed = parseTokenIds(*ids, "stop_token_ids", error_param);
    if (!parsed) return parsed.status();
    p->stop_token_ids = std::move(parsed).value();
  }
  SamplingParams& s = p->sampling;
  TURBINE_RETURN_IF_ERROR(r.readDouble("temperature", 0.0, 2.0, &s.temperature));
  TURBINE_RETURN_IF_ERROR(r.readDouble("top_p", 0.0, 1.0, &s.top_p, /*lo_exclusive=*/true));
  TURBINE_RETURN_IF_ERROR(r.readInt("top_k", -1, kIntMax, &s.top_k));
  TURBINE_RETURN_IF_ERROR(r.readDouble("min_p", 0.0, 1.0, &s.min_p));
  std::optional<int64_t> seed;
  TURBINE_RETURN_IF_ERROR(r.readInt("seed", std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::max(), &seed));
  s.seed = seed;
  TURBINE_RETURN_IF_ERROR(r.readDouble("presence_penalty", -2.0, 2.0, &s.presence_penalty));
  TURBINE_RETURN_IF_ERROR(r.readDouble("frequency_penalty", -2.0, 2.0, &s.frequency_penalty));
  TURBINE_RETURN_IF_ERROR(
      r.readDouble("repetition_penalty", 0.0, 2.0, &s.repetition_penalty, /*lo_exclusive=*/true));
  TURBINE_RETURN_IF_ERROR(readLogitBias(r, &s.logit_bias));
  TURBINE_RETURN_IF_ERROR(r.readString("user", &p->user));
  TURBINE_RETURN_IF_ERROR(r.readString("cache_salt", &p->cache_salt));
  return Status::ok();
}

Status readContent(const json& v, const std::string& prefix, std::string* error_param,
                   ChatMessage* m) {
  FieldReader r(json::object(), prefix, error_param);
  if (v.is_string()) {
    m->content = v.get<std::string>();
    return Status::ok();
  }
  if (!v.is_array()) return r.wrongType("content", v, "string or array of content parts");
  m->has_parts = true;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string part = fmt::format("content[{}]", i);
    if (!v[i].is_object()) return r.wrongType(part, v[i], "object");
    FieldReader pr(v[i], prefix + part + ".", error_param);
    std::string type;
    TURBINE_RETURN_IF_ERROR(pr.readString("type", &type));
    if (type != "text") {
      return pr.fail("type", "only 'text' content parts are supported, got '" + type + "'");
    }
    const json* text = pr.get("text");
    if (text == nullptr) return pr.fail("text", "is required");
    if (!text->is_string()) return pr.wrongType("text", *text, "string");
    m->parts.push_back(text->get<std::string>());
    m->content += m->parts.back();
  }
  return Status::ok();
}

// An assistant message's "tool_calls": [{"id", "type": "function", "function": {"name",
// "arguments": a string}}].
Status checkToolCalls(const json& v, const std::string& prefix, std::string* error_param) {
  FieldReader top(json::object(), prefix, error_param);
  if (!v.is_array()) return top.wrongType("tool_calls", v, "array");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string item = fmt::format("tool_calls[{}]", i);
    if (!v[i].is_object()) return top.wrongType(item, v[i], "object");
    FieldReader r(v[i], prefix + item + ".", error_param);
    if (r.get("id") == nullptr) return r.fail("id", "is required");
    std::string s;
    TURBINE_RETURN_IF_ERROR(r.readString("id", &s));
    s = "function";
    TURBINE_RETURN_IF_ERROR(r.readString("type", &s));
    if (s != "function") return r.fail("type", "must be 'function', got '" + s + "'");
    const json* f = r.get("function");
    if (f == nullptr) return r.fail("function", "is required");
    if (!f->is_object()) return r.wrongType("function", *f, "object");
    FieldReader fr(*f, prefix + item + ".function.", error_param);
    if (fr.get("name") == nullptr) return fr.fail("name", "is required");
    TURBINE_RETURN_IF_ERROR(fr.readString("name", &s));
    if (fr.get("arguments") == nullptr) return fr.fail("arguments", "is required");
    TURBINE_RETURN_IF_ERROR(fr.readString("arguments", &s));
  }
  return Status::ok();
}

// Tool calls as a template sees them: each function's "arguments" string replaced by the object
// it holds (templates print `arguments | tojson`, as Hugging Face's and vLLM's do); a string that
// holds no object stays a string.
nlohmann::ordered_json toolCallsForTemplate(nlohmann::ordered_json calls) {
  for (auto& c : calls) {
    auto f = c.find("function");
    if (f == c.end() || !f->is_object()) continue;
    auto a = f->find("arguments");
    if (a == f->end() || !a->is_string()) continue;
    auto parsed = nlohmann::ordered_json::parse(a->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) *a = std::move(parsed);
  }
  return calls;
}

// "tools": [{"type": "function", "function": {"name", "description"?, "parameters"?: object}}].
Status checkTools(const json& v, std::string* error_param) {
  FieldReader top(json::object(), "", error_param);
  if (!v.is_array()) return top.wrongType("tools", v, "array");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string item = fmt::format("tools[{}]", i);
    if (!v[i].is_object()) return top.wrongType(item, v[i], "object");
    FieldReader r(v[i], item + ".", error_param);
    std::string s;
    if (r.get("type") == nullptr) return r.fail("type", "is required");
    TURBINE_RETURN_IF_ERROR(r.readString("type", &s));
    if (s != "function") return r.fail("type", "must be 'function', got '" + s + "'");
    const json* f = r.get("function");
    if (f == nullptr) return r.fail("function", "is required");
    if (!f->is_object()) return r.wrongType("function", *f, "object");
    FieldReader fr(*f, item + ".function.", error_param);
    if (fr.get("name") == nullptr) return fr.fail("name", "is required");
    TURBINE_RETURN_IF_ERROR(fr.readString("name", &s));
    if (s.empty()) return fr.fail("name", "must not be empty");
    TURBINE_RETURN_IF_ERROR(fr.readString("description", &s));
    if (const json* p = fr.get("parameters"); p != nullptr && !p->is_object()) {
      return fr.wrongType("parameters", *p, "object (a JSON Schema)");
    }
  }
  return Status::ok();
}

}  // namespace

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

Result<nlohmann::json> parseJsonObject(std::string_view body) {
  if (!isValidUtf8(body)) return invalidArgument("request body is not valid UTF-8");
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return invalidArgument("request body is not valid JSON");
  if (!parsed.is_object()) return invalidArgument("request body must be a JSON object");
  return parsed;
}

Result<std::vector<int32_t>> parseTokenIds(const nlohmann::json& value, const std::string& param,
                                           std::string* error_param) {
  FieldReader r(json::object(), "", error_param);
  if (!value.is_array()) return r.wrongType(param, value, "array of token ids");
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& t = value[i];
    std::string field = fmt::format("{}[{}]", param, i);
    if (!t.is_number_integer()) return r.wrongType(field, t, "integer token id");
    if (t.is_number_unsigned() ? t.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)
                               : (t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)) {
      return r.fail(field, "token ids must be in [0, 2^31), got " + t.dump());
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

Result<std::vector<ChatMessage>> parseMessages(const nlohmann::json& value,
                                               std::string* error_param) {
  FieldReader top(json::object(), "", error_param);
  if (!value.is_array()) return top.wrongType("messages", value, "array");
  if (value.empty()) return top.fail("messages", "must contain at least one message");
  std::vector<ChatMessage> out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    std::string prefix = fmt::format("messages[{}].", i);
    if (!value[i].is_object()) return top.wrongType(prefix.substr(0, prefix.size() - 1), value[i], "object");
    FieldReader r(value[i], prefix, error_param);
    ChatMessage m;
    if (r.get("role") == nullptr) return r.fail("role", "is required");
    TURBINE_RETURN_IF_ERROR(r.readString("role", &m.role));
    // "developer" is OpenAI's newer name for system instructions; chat templates know "system".
    if (m.role == "developer") m.role = "system";
    if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool") {
      return r.fail("role", "must be 'system', 'developer', 'user', 'assistant' or 'tool', got '" + m.role + "'");
    }
    const json* content = r.get("content");
    if (content == nullptr) {
      if (m.role != "assistant") return r.fail("content", "is required");
    } else {
      TURBINE_RETURN_IF_ERROR(readContent(*content, prefix, error_param, &m));
    }
    std::string name;
    TURBINE_RETURN_IF_ERROR(r.readString("name", &name));
    if (r.get("name") != nullptr) m.name = name;
    if (m.role == "tool") {
      if (r.get("tool_call_id") == nullptr) return r.fail("tool_call_id", "is required for role 'tool'");
      std::string id;
      TURBINE_RETURN_IF_ERROR(r.readString("tool_call_id", &id));
      m.tool_call_id = std::move(id);
    }
    if (const json* calls = r.get("tool_calls")) {
      if (m.role != "assistant") return r.fail("tool_calls", "is only allowed on 'assistant' messages");
      TURBINE_RETURN_IF_ERROR(checkToolCalls(*calls, prefix, error_param));
      if (!calls->empty()) m.tool_calls = toolCallsForTemplate(ordered(*calls));
    }
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

// The constraint that makes the output the calls tool_choice asks for (parseForcedToolCalls):
// `function` named: its parameters object; "" ("required"): an array of one or more
// {"name", "parameters"} objects of the tools (at most one without parallel tool calls).
Result<structured::OutputConstraint> forcedToolConstraint(const nlohmann::ordered_json& tools,
                                                          const std::string& function, bool parallel) {
  using Ordered = nlohmann::ordered_json;
  Ordered top = Ordered::object(), alternatives = Ordered::array();
  Ordered named;
  for (const Ordered& t : tools) {
    const Ordered& fn = t["function"];
    const std::string name = fn["name"].get<std::string>();
    Ordered params = fn.contains("parameters") ? fn["parameters"] : Ordered{{"type", "object"}};
    if (!function.empty()) {
      if (name == function) named = params;
      continue;
    }
    // $defs of each tool move to the top, where its "#/$defs/..." references then point.
    for (const char* defs : {"$defs", "definitions"}) {
      if (params.is_object() && params.contains(defs) && params[defs].is_object()) {
        for (auto it = params[defs].begin(); it != params[defs].end(); ++it) top[defs][it.key()] = it.value();
        params.erase(defs);
      }
    }
    alternatives.push_back({{"type", "object"},
                            {"properties", {{"name", {{"enum", {name}}}}, {"parameters", params}}},
                            {"required", {"name", "parameters"}}});
  }
  if (!function.empty()) {
    if (named.is_null()) return invalidArgument("function '" + function + "' is not among the tools");
    return structured::OutputConstraint{structured::OutputConstraint::Kind::kJsonSchema, named.dump()};
  }
  top["type"] = "array";
  top["minItems"] = 1;
  if (!parallel) top["maxItems"] = 1;
  top["items"] = {{"anyOf", alternatives}};
  structured::OutputConstraint c{structured::OutputConstraint::Kind::kJsonSchema, top.dump()};
  Status st = checkConstraint(c);
  if (!st.isOk()) return invalidArgument("the tools' parameters: " + st.message());
  return c;
}

Result<nlohmann::ordered_json> toolsOf(const json& body, ClientOrder& order, std::string* error_param) {
  FieldReader r(body, "", error_param);
  const json* tools = r.get("tools");
  if (tools == nullptr) return nlohmann::ordered_json();
  TURBINE_RETURN_IF_ERROR(checkTools(*tools, error_param));
  if (tools->empty()) return nlohmann::ordered_json();
  return order.field("tools", *tools);
}

Result<nlohmann::ordered_json> templateExtraOf(const json& body, ClientOrder& order, std::string* error_param) {
  FieldReader r(body, "", error_param);
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  const json* kwargs = r.get("chat_template_kwargs");
  const json* documents = r.get("documents");
  if (kwargs != nullptr) {
    if (!kwargs->is_object()) return r.wrongType("chat_template_kwargs", *kwargs, "object");
    for (const char* reserved : {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"}) {
      if (kwargs->contains(reserved)) {
        return r.fail(std::string("chat_template_kwargs.") + reserved, "is set by the request itself, not here");
      }
    }
    extra = order.field("chat_template_kwargs", *kwargs);
  }
  if (documents != nullptr) {
    if (!documents->is_array()) return r.wrongType("documents", *documents, "array of objects");
    for (size_t i = 0; i < documents->size(); ++i) {
      if (!(*documents)[i].is_object()) return r.wrongType(fmt::format("documents[{}]", i), (*documents)[i], "object");
    }
    extra["documents"] = order.field("documents", *documents);
  }
  return extra;
}

}  // namespace

Result<ChatCompletionRequest> parseChatCompletionRequest(const nlohmann::json& body,
                                                         std::string* error_param, std::string_view raw) {
  ChatCompletionRequest req;
  ClientOrder order(raw);
  FieldReader r(body, "", error_param);
  const json* messages = r.get("messages");
  if (messages == nullptr) return r.fail("messages", "is required");
  TURBINE_RETURN_IF_ERROR(readCommon(body, error_param, &req.common, order));
  auto parsed = parseMessages(*messages, error_param);
  if (!parsed) return parsed.status();
  req.messages = std::move(parsed).value();
  for (size_t i = 0; i < req.messages.size(); ++i) {
    if (!req.messages[i].tool_calls.is_null()) {
      req.messages[i].tool_calls = toolCallsForTemplate(order.messageField(i, "tool_calls", (*messages)[i]["tool_calls"]));
    }
  }
  TURBINE_RETURN_IF_ERROR(r.readBool("logprobs", &req.logprobs));
  TURBINE_RETURN_IF_ERROR(r.readInt("top_logprobs", 0, kMaxTopLogprobs, &req.top_logprobs));
  if (r.get("top_logprobs") != nullptr && !req.logprobs) {
    return r.fail("top_logprobs", "requires 'logprobs' to be true");
  }
  TURBINE_RETURN_IF_ERROR(r.readBool("add_generation_prompt", &req.add_generation_prompt));
  req.common.sampling.logprobs = req.logprobs ? req.top_logprobs : -1;
  auto tools = toolsOf(body, order, error_param);
  if (!tools) return tools.status();
  req.tools = std::move(tools).value();
  // As OpenAI (and vLLM): "auto" when tools are given, else "none".
  req.tool_choice = req.tools.is_null() ? "none" : "auto";
  TURBINE_RETURN_IF_ERROR(r.readBool("parallel_tool_calls", &req.parallel_tool_calls));
  if (const json* choice = r.get("tool_choice")) {
    if (choice->is_object()) {
      FieldReader cr(*choice, "tool_choice.", error_param);
      const json* fn = cr.get("function");
      if (fn == nullptr || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string()) {
        return r.fail("tool_choice", "a named tool choice is {\"type\": \"function\", \"function\": {\"name\": ...}}");
      }
      req.tool_choice = "function";
      req.named_tool = (*fn)["name"].get<std::string>();
    } else {
      if (!choice->is_string()) return r.wrongType("tool_choice", *choice, "string or object");
      const std::string c = choice->get<std::string>();
      if (c != "none" && c != "auto" && c != "required") {
        return r.fail("tool_choice", "must be 'none', 'auto' or 'required', got '" + c + "'");
      }
      if (c != "none" && req.tools.is_null()) return r.fail("tool_choice", "'" + c + "' needs 'tools'");
      req.tool_choice = c;
    }
    if (req.tool_choice == "required" || req.tool_choice == "function") {
      if (req.common.constraint) {
        return r.fail("tool_choice", "'" + req.tool_choice + "' cannot be combined with another structured output constraint");
      }
      auto c = forcedToolConstraint(req.tools, req.tool_choice == "function" ? req.named_tool : "",
                                    req.parallel_tool_calls);
      if (!c.isOk()) return r.fail("tool_choice", c.status().message());
      req.common.constraint = std::move(c).value();
    }
  }
  auto extra = templateExtraOf(body, order, error_param);
  if (!extra) return extra.status();
  req.template_extra = std::move(extra).value();
  return req;
}

Result<nlohmann::ordered_json> parseTools(const nlohmann::json& body, std::string_view raw,
                                          std::string* error_param) {
  ClientOrder order(raw);
  return toolsOf(body, order, error_param);
}

Result<nlohmann::ordered_json> parseTemplateExtra(const nlohmann::json& body, std::string_view raw,
                                                  std::string* error_param) {
  ClientOrder order(raw);
  return templateExtraOf(body, order, error_param);
}

Result<CompletionRequest> parseCompletionRequest(const nlohmann::json& body,
                                                 std::string* error_param, std::string_view raw) {
  CompletionRequest req;
  ClientOrder order(raw);
  FieldReader r(body, "", error_param);
  TURBINE_RETURN_IF_ERROR(r.readBool("echo", &req.echo));
  TURBINE_RETURN_IF_ERROR(readCommon(body, error_param, &req.common, order, req.echo ? 0 : 1));
  const json* prompt = r.get("prompt");
  if (prompt == nullptr) return r.fail("prompt", "is required");
  auto tokenPrompt = [&](const json& v, const std::string& name) -> Status {
    auto ids = parseTokenIds(v, name, error_param);
    if (!ids) return ids.status();
    if (ids->empty()) return r.fail(name, "must not be empty");
    PromptInput p;
    p.is_tokens = true;
    p.token_ids = std::move(ids).value();
    req.prompts.push_back(std::move(p));
    return Status::ok();
  };
  if (prompt->is_string()) {
    req.prompts.push_back(PromptInput{false, prompt->get<std::string>(), {}});
  } else if (!prompt->is_array()) {
    return r.wrongType("prompt", *prompt, "string, array of strings or array of token ids");
  } else if (prompt->empty()) {
    return r.fail("prompt", "must not be empty");
  } else if ((*prompt)[0].is_number()) {
    TURBINE_RETURN_IF_ERROR(tokenPrompt(*prompt, "prompt"));
  } else {
    for (size_t i = 0; i < prompt->size(); ++i) {
      const json& item = (*prompt)[i];
      std::string name = fmt::format("prompt[{}]", i);
      if (item.is_string()) {
        req.prompts.push_back(PromptInput{false, item.get<std::string>(), {}});
      } else if (item.is_array()) {
        TURBINE_RETURN_IF_ERROR(tokenPrompt(item, name));
      } else {
        return r.wrongType(name, item, "string or array of token ids");
      }
    }
  }
  if (req.prompts.size() * static_cast<size_t>(req.common.n) > static_cast<size_t>(kMaxChoices)) {
    return r.fail("prompt", fmt::format("number of prompts times n must be <= {}", kMaxChoices));
  }
  std::optional<int64_t> logprobs;
  TURBINE_RETURN_IF_ERROR(r.readInt("logprobs", 0, kMaxTopLogprobs, &logprobs));
  if (logprobs) req.logprobs = static_cast<int32_t>(*logprobs);
  req.common.sampling.logprobs = req.logprobs ? *req.logprobs : -1;
  if (req.echo && req.logprobs) {  // the echoed prompt's tokens get logprobs too
    req.common.sampling.prompt_logprobs = std::max(req.common.sampling.prompt_logprobs, *req.logprobs);
  }
  return req;
}

}  // namespace turbine::frontend
