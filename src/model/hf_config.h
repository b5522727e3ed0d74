// Readers for the JSON side files of a Hugging Face model folder:
//   config.json            -> ModelConfig (architecture and hyper-parameters)
//   generation_config.json -> extra EOS ids (merged into ModelConfig::eos_token_ids)
//   tokenizer_config.json  -> chat template, BOS/EOS token strings, add_bos/add_eos behaviour
// Errors name the file and the field ("config.json: field 'hidden_size': expected a positive
// integer"). Absent optional fields take the defaults Hugging Face transformers uses.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "model/model_config.h"

namespace turbine::model {

// Parses config.json text; `source` names the file in errors. Supports LlamaForCausalLM,
// MistralForCausalLM and Qwen2ForCausalLM (others: Unimplemented naming the architecture);
// rope_scaling types "linear" and "llama3" (others: Unimplemented).
Result<ModelConfig> parseHfConfig(const std::string& text, const std::string& source);

// Reads `dir`/config.json, then merges EOS ids from `dir`/generation_config.json when present.
Result<ModelConfig> readHfConfig(const std::string& dir);

struct TokenizerConfig {
  std::string chat_template;              // "" when the folder has none
  std::optional<std::string> bos_token;   // token text, e.g. "<s>"; nullopt when null/absent
  std::optional<std::string> eos_token;
  std::optional<bool> add_bos_token;      // as written in the file; nullopt when absent
  std::optional<bool> add_eos_token;
};

// Reads `dir`/tokenizer_config.json; a missing file gives an empty TokenizerConfig. A
// chat_template given as a list of {name, template} picks the one named "default" (or the first).
Result<TokenizerConfig> readTokenizerConfig(const std::string& dir);

}  // namespace turbine::model
