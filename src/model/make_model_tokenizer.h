// Tokenizer and side files written by makeModel (internal to make_model*.cc).
#pragma once

#include <string>

#include "common/status.h"
#include "model/bpe_trainer.h"
#include "model/gguf_writer.h"
#include "model/model_config.h"

namespace turbine::model {

// ChatML, as used by Qwen2 and many fine-tunes.
extern const char* const kChatMlTemplate;

// Ids of the special tokens in a vocabulary trained by trainBpe with the default specials.
struct SpecialIds {
  int32_t endoftext, im_start, im_end;
};
SpecialIds specialIds(const BpeVocab& vocab);

// HF side files: tokenizer.json, tokenizer_config.json, config.json, generation_config.json.
Status writeHfTokenizerFiles(const std::string& dir, const BpeVocab& vocab,
                             int32_t model_max_length);
Status writeHfConfigFiles(const std::string& dir, const ModelConfig& config,
                          const std::string& torch_dtype, const SpecialIds& ids);

// GGUF llama metadata: hyper-parameters and the tokenizer (tokenizer.ggml.*).
void addGgufMetadata(GgufWriter* w, const ModelConfig& config, const BpeVocab& vocab,
                     const std::string& name, uint32_t file_type);

}  // namespace turbine::model
