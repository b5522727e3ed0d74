// Model loading: resolves a model path, reads its configuration and memory-maps its weights;
// by default (TURBINE_WEIGHTS=auto) the weights are then copied once into 2 MiB pages, which
// decode streams faster than a file mapping (see model_loader.cc; =mmap keeps the mapping).
//   path = a Hugging Face folder (config.json + model.safetensors or a sharded checkpoint with
//          model.safetensors.index.json), a .gguf file, or a folder holding exactly one .gguf.
// Every expected tensor is checked for presence, dtype and shape against the configuration;
// errors are one line naming the file and the tensor or key:
//   "DIR/model.safetensors: tensor 'model.layers.3.self_attn.q_proj.weight': shape [64,128],
//    expected [128,128]".
// Conventions of the result (see weights.h / model_config.h):
//   - shapes are [out, in] (GGUF's reversed ne order is converted);
//   - HF folders and GGUF qwen2 use RopeStyle::kHalf; GGUF llama uses RopeStyle::kInterleaved
//     (its q/k rows were permuted by the converter, so the weights are used as stored);
//   - lm_head aliases tok_embeddings when the embeddings are tied or lm_head is absent.
// Thread safety: the functions are re-entrant; the returned weights are immutable.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/weights.h"

namespace turbine::model {

enum class ModelFormat { kHuggingFace, kGguf };

// What the tokenizer and the frontend need to know about a model besides its weights.
struct ModelInfo {
  ModelFormat format = ModelFormat::kHuggingFace;
  std::string path;            // the resolved HF folder or .gguf file
  std::string model_id;        // GGUF general.name, else the folder / file name without .gguf
  std::string architecture;    // as in ModelConfig::architecture
  std::string tokenizer_path;  // HF: DIR/tokenizer.json ("" if absent); GGUF: the .gguf file
  std::string chat_template;   // Jinja source; "" when the model has none
  int32_t bos_token_id = -1;   // -1 when the model has no BOS token
  std::vector<int32_t> eos_token_ids;  // every id that ends generation (EOS, EOT, ...)
  std::string bos_token;       // token text ("" when unknown)
  std::string eos_token;       // text of the primary EOS token ("" when unknown)
  bool add_bos = false;        // prepend BOS when encoding a prompt
  bool add_eos = false;        // append EOS when encoding a prompt
};

// Resolves `path` as described above: returns the HF folder or the .gguf file path.
Result<std::string> resolveModelPath(const std::string& path);
Result<ModelFormat> detectModelFormat(const std::string& path);

// Reads configuration and tokenizer metadata only (no weights are validated).
Result<ModelInfo> loadModelInfo(const std::string& path);

// Reads the configuration only.
Result<ModelConfig> loadModelConfig(const std::string& path);

// Maps and validates the weights. `progress`, when set, is called with a fraction in [0, 1] as
// the weight pages are faulted into memory (the last call is with 1.0).
Result<ModelWeights> loadModel(const std::string& path,
                               std::function<void(float fraction)> progress = {});

}  // namespace turbine::model
