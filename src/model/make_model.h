// makeModel: writes a random-weight Llama-architecture model (RMSNorm, RoPE, SwiGLU, grouped-
// query attention) in a real format, with a byte-level BPE tokenizer learned on text files of
// the machine (bpe_trainer.h) and a ChatML chat template.
//   format hf:   OUT/ config.json, generation_config.json, model.safetensors, tokenizer.json,
//                tokenizer_config.json (OUT is created; files in it are overwritten).
//   format gguf: OUT if it ends in ".gguf", else OUT/model.gguf; architecture `llama`, tokenizer
//                `gpt2` / pre `llama-bpe`, q/k rows permuted like llama.cpp's converter.
// The weights depend only on (preset, seed) and each tensor's name, never on format or dtype: an
// HF folder and a GGUF file made with the same seed hold the same function (up to the dtype's
// rounding). Same options -> byte-identical files. Tensors are generated and written in chunks,
// so memory stays far below the model size.
// Initialisation: linear weights uniform with std 1/sqrt(fan_in), embeddings std 1, norm weights
// 1 ± 0.1; untied lm_head. This keeps activations O(1) through the layers and makes greedy
// decoding move between tokens rather than repeat one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"

namespace turbine::model {

struct ModelPreset {
  std::string name;
  int32_t hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, vocab_size;
  int32_t max_position_embeddings = 2048;
};

// tiny ≈1.8M params (tests), small ≈32M, medium ≈250M (dim 1024, 16 layers, 16 heads, 8 KV
// heads, FFN 2816, vocab 32000), large ≈1.1B (TinyLlama: dim 2048, 22 layers, 32 heads, 4 KV
// heads, FFN 5632, vocab 32000).
const std::vector<ModelPreset>& modelPresets();
Result<ModelPreset> findModelPreset(const std::string& name);
// The ModelConfig a preset is written with (HF view: RopeStyle::kHalf).
ModelConfig presetConfig(const ModelPreset& preset);

struct MakeModelOptions {
  std::string preset = "tiny";  // tiny | small | medium | large
  std::string format = "hf";    // hf | gguf
  std::string dtype = "f32";    // f32 | f16 | bf16 | q8_0 (q8_0: gguf only)
  uint64_t seed = 0;
  std::string out;              // required; see the header comment
  // Cap on the tokenizer's training text (bytes); smaller is faster, the default gives a full
  // vocabulary for every preset.
  size_t tokenizer_corpus_bytes = size_t{4} << 20;
  // Called with the fraction of weight bytes written, in [0, 1].
  std::function<void(float fraction)> progress;
};

// Validates the options (one-line InvalidArgument naming the bad field) and writes the model.
Status makeModel(const MakeModelOptions& options);

// Where makeModel writes the .gguf for `out` (OUT if it ends in ".gguf", else OUT/model.gguf).
std::string ggufOutputPath(const std::string& out);

// llama.cpp's q/k row permutation for interleaved RoPE: within each head of `head_dim` rows,
// output row 2j+i = input row i*head_dim/2 + j (i in {0,1}). `rows` is a multiple of head_dim;
// each row is `row_bytes` bytes. inversePermuteQk undoes it.
void permuteQkRows(const uint8_t* src, uint8_t* dst, int64_t rows, int64_t head_dim,
                   size_t row_bytes);
void inversePermuteQkRows(const uint8_t* src, uint8_t* dst, int64_t rows, int64_t head_dim,
                          size_t row_bytes);

}  // namespace turbine::model
