// ModelConfig: the hyper-parameters of a decoder-only transformer of the Llama family, as read
// from a Hugging Face config.json or GGUF metadata. This is the contract between the loaders
// (src/model) and the forward pass (src/engine).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace turbine::model {

// How q/k head dimensions are paired for rotary embeddings.
enum class RopeStyle {
  // Hugging Face "rotate_half" (NeoX): dimension i pairs with i + head_dim/2. HF Llama/Mistral/
  // Qwen2 checkpoints, and GGUF qwen2 files.
  kHalf,
  // GPT-J style: dimension 2i pairs with 2i+1. GGUF llama files (the converter permutes the
  // rows of q and k so that this gives the same function as kHalf on the HF weights).
  kInterleaved,
};

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  // llama3 only
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int32_t original_max_position_embeddings = 8192;
  // Per-frequency divisors (head_dim / 2 of them), applied after the rules above: GGUF files of
  // Llama 3.1+ store the llama3 rule precomputed as the tensor `rope_freqs.weight`.
  std::vector<float> freq_factors;
};

struct ModelConfig {
  std::string architecture;        // "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;         // model dimension
  int32_t intermediate_size = 0;   // FFN dimension
  int32_t num_layers = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;        // grouped-query attention: num_heads % num_kv_heads == 0
  int32_t head_dim = 0;            // usually hidden_size / num_heads
  int32_t max_position_embeddings = 2048;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  RopeStyle rope_style = RopeStyle::kHalf;
  bool tie_word_embeddings = false;  // lm_head shares the token embedding matrix
  bool attention_bias = false;       // q/k/v projections have biases (Qwen2)
  // Sliding-window attention: layers from sliding_window_first_layer on let the token at
  // position p attend to positions [p - sliding_window + 1, p] only (0: full causal attention).
  // Mistral v0.1: every layer, 4096. Qwen2: with use_sliding_window, layers >= max_window_layers.
  int32_t sliding_window = 0;
  int32_t sliding_window_first_layer = 0;
  int32_t windowOf(int32_t layer) const {
    return layer >= sliding_window_first_layer ? sliding_window : 0;
  }
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // from config.json / generation_config.json / GGUF
};

}  // namespace turbine::model
