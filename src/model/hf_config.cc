#include "model/hf_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace turbine::model {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

Result<json> readJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    return invalidArgument(path + ": not valid JSON: " + e.what());
  }
}

// Reads an integer field; `def` when absent or null. Errors name the file and the field.
Result<int32_t> intField(const json& j, const char* key, const std::string& src,
                         std::optional<int32_t> def) {
  if (!j.contains(key) || j[key].is_null()) {
    if (def) return *def;
    return invalidArgument(src + ": field '" + key + "' missing");
  }
  const json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
    return invalidArgument(src + ": field '" + key + "': expected a non-negative integer, got " +
                           v.dump());
  }
  return v.get<int32_t>();
}

Result<float> floatField(const json& j, const char* key, const std::string& src, float def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number()) {
    return invalidArgument(src + ": field '" + key + "': expected a number, got " +
                           j[key].dump());
  }
  return j[key].get<float>();
}

Result<bool> boolField(const json& j, const char* key, const std::string& src, bool def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_boolean()) {
    return invalidArgument(src + ": field '" + key + "': expected true/false, got " +
                           j[key].dump());
  }
  return j[key].get<bool>();
}

// eos_token_id may be an integer or a list of integers.
Result<std::vector<int32_t>> idList(const json& j, const char* key, const std::string& src) {
  std::vector<int32_t> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  const json& v = j[key];
  auto one = [&](const json& x) -> Status {
    if (!x.is_number_integer() || x.get<int64_t>() < 0) {
      return invalidArgument(src + ": field '" + key + "': bad token id " + x.dump());
    }
    out.push_back(x.get<int32_t>());
    return Status::ok();
  };
  if (v.is_array()) {
    for (const json& x : v) TURBINE_RETURN_IF_ERROR(one(x));
  } else {
    TURBINE_RETURN_IF_ERROR(one(v));
  }
  return out;
}

Status parseRopeScaling(const json& j, const std::string& src, RopeScaling* rs) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return Status::ok();
  const json& r = j["rope_scaling"];
  const std::string where = src + ": field 'rope_scaling'";
  if (!r.is_object()) return invalidArgument(where + ": expected an object");
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    if (r.contains(k) && r[k].is_string()) {
      type = r[k].get<std::string>();
      break;
    }
  }
  if (type == "default") return Status::ok();
  if (type != "linear" && type != "llama3") {
    return unimplemented(where + ": type '" + type + "' not supported (linear, llama3 are)");
  }
  rs->type = type == "linear" ? RopeScaling::Type::kLinear : RopeScaling::Type::kLlama3;
  TURBINE_ASSIGN_OR_RETURN(rs->factor, floatField(r, "factor", where, 1.0f));
  if (rs->factor <= 0) return invalidArgument(where + ": factor must be positive");
  if (rs->type == RopeScaling::Type::kLlama3) {
    TURBINE_ASSIGN_OR_RETURN(rs->low_freq_factor, floatField(r, "low_freq_factor", where, 1.0f));
    TURBINE_ASSIGN_OR_RETURN(rs->high_freq_factor,
                             floatField(r, "high_freq_factor", where, 4.0f));
    TURBINE_ASSIGN_OR_RETURN(rs->original_max_position_embeddings,
                             intField(r, "original_max_position_embeddings", where, 8192));
    if (rs->high_freq_factor <= rs->low_freq_factor) {
      return invalidArgument(where + ": high_freq_factor must exceed low_freq_factor");
    }
  }
  return Status::ok();
}

Status parseShape(const json& j, const std::string& src, ModelConfig* c) {
  TURBINE_ASSIGN_OR_RETURN(c->vocab_size, intField(j, "vocab_size", src, std::nullopt));
  TURBINE_ASSIGN_OR_RETURN(c->hidden_size, intField(j, "hidden_size", src, std::nullopt));
  TURBINE_ASSIGN_OR_RETURN(c->intermediate_size,
                           intField(j, "intermediate_size", src, std::nullopt));
  TURBINE_ASSIGN_OR_RETURN(c->num_layers, intField(j, "num_hidden_layers", src, std::nullopt));
  TURBINE_ASSIGN_OR_RETURN(c->num_heads, intField(j, "num_attention_heads", src, std::nullopt));
  TURBINE_ASSIGN_OR_RETURN(c->num_kv_heads,
                           intField(j, "num_key_value_heads", src, c->num_heads));
  if (c->num_heads == 0) return invalidArgument(src + ": field 'num_attention_heads' is 0");
  TURBINE_ASSIGN_OR_RETURN(c->head_dim,
                           intField(j, "head_dim", src, c->hidden_size / c->num_heads));
  for (auto [name, v] : {std::pair{"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
                         {"intermediate_size", c->intermediate_size},
                         {"num_hidden_layers", c->num_layers},
                         {"num_key_value_heads", c->num_kv_heads}, {"head_dim", c->head_dim}}) {
    if (v <= 0) return invalidArgument(src + ": field '" + name + "' must be positive");
  }
  if (c->num_heads % c->num_kv_heads != 0) {
    return invalidArgument(src + ": num_attention_heads " + std::to_string(c->num_heads) +
                           " is not a multiple of num_key_value_heads " +
                           std::to_string(c->num_kv_heads));
  }
  if (c->head_dim % 2 != 0) return invalidArgument(src + ": head_dim must be even for RoPE");
  return Status::ok();
}

}  // namespace

Result<ModelConfig> parseHfConfig(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return invalidArgument(src + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) return invalidArgument(src + ": not a JSON object");
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() ||
      j["architectures"].empty() || !j["architectures"][0].is_string()) {
    return invalidArgument(src + ": field 'architectures' missing or not a list of strings");
  }
  c.architecture = j["architectures"][0].get<std::string>();
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM" && !qwen2) {
    return unimplemented(src + ": architecture '" + c.architecture +
                         "' not supported (LlamaForCausalLM, MistralForCausalLM, "
                         "Qwen2ForCausalLM are)");
  }
  TURBINE_RETURN_IF_ERROR(parseShape(j, src, &c));
  TURBINE_ASSIGN_OR_RETURN(c.max_position_embeddings,
                           intField(j, "max_position_embeddings", src, 2048));
  TURBINE_ASSIGN_OR_RETURN(c.rms_norm_eps, floatField(j, "rms_norm_eps", src, 1e-6f));
  TURBINE_ASSIGN_OR_RETURN(c.rope_theta, floatField(j, "rope_theta", src, 10000.0f));
  TURBINE_RETURN_IF_ERROR(parseRopeScaling(j, src, &c.rope_scaling));
  // Qwen2 always has q/k/v biases; Llama has them when attention_bias is set.
  TURBINE_ASSIGN_OR_RETURN(c.attention_bias, boolField(j, "attention_bias", src, qwen2));
  if (qwen2) c.attention_bias = true;
  TURBINE_ASSIGN_OR_RETURN(c.tie_word_embeddings,
                           boolField(j, "tie_word_embeddings", src, false));
  // Sliding window as transformers applies it: Mistral's `sliding_window` (null: none) on every
  // layer; Qwen2's only with `use_sliding_window`, on layers >= `max_window_layers`. Llama has
  // none (its configs may carry the key, unused).
  if (c.architecture != "LlamaForCausalLM") {
    TURBINE_ASSIGN_OR_RETURN(const bool use, boolField(j, "use_sliding_window", src, !qwen2));
    if (use) {
      TURBINE_ASSIGN_OR_RETURN(c.sliding_window, intField(j, "sliding_window", src, 0));
      if (qwen2) {
        // 28: transformers' default.
        TURBINE_ASSIGN_OR_RETURN(c.sliding_window_first_layer,
                                 intField(j, "max_window_layers", src, 28));
      }
    }
  }
  TURBINE_ASSIGN_OR_RETURN(int32_t bos, intField(j, "bos_token_id", src, -1));
  c.bos_token_id = bos;
  TURBINE_ASSIGN_OR_RETURN(c.eos_token_ids, idList(j, "eos_token_id", src));
  c.rope_style = RopeStyle::kHalf;
  return c;
}

Result<ModelConfig> readHfConfig(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(path + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  TURBINE_ASSIGN_OR_RETURN(ModelConfig c, parseHfConfig(text, path));
  const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
  std::error_code ec;
  if (fs::exists(gen_path, ec)) {
    TURBINE_ASSIGN_OR_RETURN(json g, readJson(gen_path));
    TURBINE_ASSIGN_OR_RETURN(auto eos, idList(g, "eos_token_id", gen_path));
    for (int32_t id : eos) {
      if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
        c.eos_token_ids.push_back(id);
      }
    }
    if (c.bos_token_id < 0) {
      TURBINE_ASSIGN_OR_RETURN(c.bos_token_id, intField(g, "bos_token_id", gen_path, -1));
    }
  }
  for (int32_t id : c.eos_token_ids) {
    if (id >= c.vocab_size) {
      return invalidArgument(path + ": eos token id " + std::to_string(id) +
                             " is not below vocab_size " + std::to_string(c.vocab_size));
    }
  }
  return c;
}

namespace {

// A special token is written as a string or as an AddedToken object {"content": ...}.
std::optional<std::string> tokenText(const json& j, const char* key) {
  if (!j.contains(key)) return std::nullopt;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return std::nullopt;
}

Result<std::string> chatTemplate(const json& j, const std::string& src) {
  if (!j.contains("chat_template") || j["chat_template"].is_null()) return std::string();
  const json& t = j["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    std::string first;
    for (const json& e : t) {
      if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
      if (e.value("name", "") == "default") return e["template"].get<std::string>();
      if (first.empty()) first = e["template"].get<std::string>();
    }
    return first;
  }
  return invalidArgument(src + ": field 'chat_template': expected a string or a list");
}

}  // namespace

Result<TokenizerConfig> readTokenizerConfig(const std::string& dir) {
  TokenizerConfig tc;
  const std::string path = (fs::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!fs::exists(path, ec)) return tc;
  TURBINE_ASSIGN_OR_RETURN(json j, readJson(path));
  if (!j.is_object()) return invalidArgument(path + ": not a JSON object");
  TURBINE_ASSIGN_OR_RETURN(tc.chat_template, chatTemplate(j, path));
  if (tc.chat_template.empty()) {  // newer transformers save it beside the config
    std::ifstream in(fs::path(dir) / "chat_template.jinja", std::ios::binary);
    if (in) tc.chat_template.assign(std::istreambuf_iterator<char>(in), {});
  }
  tc.bos_token = tokenText(j, "bos_token");
  tc.eos_token = tokenText(j, "eos_token");
  for (auto [key, out] : {std::pair{"add_bos_token", &tc.add_bos_token},
                          std::pair{"add_eos_token", &tc.add_eos_token}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_boolean()) {
      return invalidArgument(path + ": field '" + key + "': expected true/false");
    }
    *out = j[key].get<bool>();
  }
  return tc;
}

}  // namespace turbine::model
