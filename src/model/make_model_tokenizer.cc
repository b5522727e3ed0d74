#include "model/make_model_tokenizer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace turbine::model {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

Status writeJson(const std::string& path, const ojson& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return ioError(path + ": cannot create: " + std::strerror(errno));
  out << j.dump(2) << "\n";
  if (!out) return ioError(path + ": write failed");
  return Status::ok();
}

ojson addedToken(int32_t id, const std::string& content) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", true}};
}

}  // namespace

const char* const kChatMlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

SpecialIds specialIds(const BpeVocab& vocab) {
  return {vocab.first_special_id, vocab.first_special_id + 1, vocab.first_special_id + 2};
}

Status writeHfTokenizerFiles(const std::string& dir, const BpeVocab& vocab,
                             int32_t model_max_length) {
  ojson added = ojson::array();
  ojson decoder_added = ojson::object();
  for (int32_t id = vocab.first_special_id; id < static_cast<int32_t>(vocab.tokens.size()); ++id) {
    added.push_back(addedToken(id, vocab.tokens[id]));
    ojson d = addedToken(id, vocab.tokens[id]);
    d.erase("id");
    decoder_added[std::to_string(id)] = d;
  }
  ojson vmap = ojson::object();
  for (int32_t id = 0; id < vocab.first_special_id; ++id) vmap[vocab.tokens[id]] = id;
  ojson tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", kLlama3PreTokenizerRegex}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", true},
           {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
        {"use_regex", true}}},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vmap}, {"merges", vocab.merges}}},
  };
  TURBINE_RETURN_IF_ERROR(writeJson((fs::path(dir) / "tokenizer.json").string(), tok));
  const SpecialIds ids = specialIds(vocab);
  ojson cfg = {
      {"add_bos_token", false},
      {"add_eos_token", false},
      {"added_tokens_decoder", decoder_added},
      {"bos_token", nullptr},
      {"chat_template", kChatMlTemplate},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", vocab.tokens[ids.im_end]},
      {"model_max_length", model_max_length},
      {"pad_token", vocab.tokens[ids.endoftext]},
      {"tokenizer_class", "PreTrainedTokenizerFast"},
  };
  return writeJson((fs::path(dir) / "tokenizer_config.json").string(), cfg);
}

Status writeHfConfigFiles(const std::string& dir, const ModelConfig& c,
                          const std::string& torch_dtype, const SpecialIds& ids) {
  ojson cfg = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", nullptr},
      {"eos_token_id", ids.im_end},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"mlp_bias", false},
      {"num_attention_heads", c.num_heads},
      {"num_hidden_layers", c.num_layers},
      {"num_key_value_heads", c.num_kv_heads},
      {"pretraining_tp", 1},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_scaling", nullptr},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", false},
      {"torch_dtype", torch_dtype},
      {"transformers_version", "4.44.0"},
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
  TURBINE_RETURN_IF_ERROR(writeJson((fs::path(dir) / "config.json").string(), cfg));
  ojson gen = {{"eos_token_id", {ids.im_end, ids.endoftext}},
               {"pad_token_id", ids.endoftext},
               {"transformers_version", "4.44.0"}};
  return writeJson((fs::path(dir) / "generation_config.json").string(), gen);
}

void addGgufMetadata(GgufWriter* w, const ModelConfig& c, const BpeVocab& vocab,
                     const std::string& name, uint32_t file_type) {
  w->addString("general.architecture", "llama");
  w->addString("general.name", name);
  w->addUint32("general.file_type", file_type);
  w->addUint32("llama.vocab_size", static_cast<uint32_t>(c.vocab_size));
  w->addUint32("llama.context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w->addUint32("llama.embedding_length", static_cast<uint32_t>(c.hidden_size));
  w->addUint32("llama.block_count", static_cast<uint32_t>(c.num_layers));
  w->addUint32("llama.feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w->addUint32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w->addUint32("llama.attention.head_count", static_cast<uint32_t>(c.num_heads));
  w->addUint32("llama.attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w->addUint32("llama.attention.key_length", static_cast<uint32_t>(c.head_dim));
  w->addUint32("llama.attention.value_length", static_cast<uint32_t>(c.head_dim));
  w->addFloat32("llama.attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w->addFloat32("llama.rope.freq_base", c.rope_theta);

  const SpecialIds ids = specialIds(vocab);
  std::vector<int32_t> types(vocab.tokens.size(), 1);  // 1 = normal
  for (size_t i = vocab.first_special_id; i < types.size(); ++i) types[i] = 3;  // 3 = control
  w->addString("tokenizer.ggml.model", "gpt2");
  w->addString("tokenizer.ggml.pre", "llama-bpe");
  w->addStringArray("tokenizer.ggml.tokens", vocab.tokens);
  w->addInt32Array("tokenizer.ggml.token_type", types);
  w->addStringArray("tokenizer.ggml.merges", vocab.merges);
  // No real BOS: like llama.cpp's Qwen2 conversion, <|endoftext|> stands in and is not added.
  w->addUint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(ids.endoftext));
  w->addUint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(ids.im_end));
  w->addUint32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(ids.im_end));
  w->addUint32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(ids.endoftext));
  w->addBool("tokenizer.ggml.add_bos_token", false);
  w->addBool("tokenizer.ggml.add_eos_token", false);
  w->addString("tokenizer.chat_template", kChatMlTemplate);
}

}  // namespace turbine::model
