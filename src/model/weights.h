// ModelWeights: memory-mapped tensors of a loaded model, by role. The loaders fill it; the
// forward pass reads it. Tensors point into the mapped files, which `files` keeps alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "model/model_config.h"

namespace turbine::model {

enum class DType {
  kF32,
  kF16,
  kBF16,
  // GGML Q8_0: blocks of 32 values along the innermost dimension, each block a f16 scale d
  // followed by 32 int8 q; value = d * q. 34 bytes per block.
  kQ8_0,
};

const char* dtypeName(DType t);
// Bytes taken by `n` consecutive elements (n must be a multiple of 32 for kQ8_0).
size_t dtypeBytes(DType t, int64_t n);

inline constexpr int kQ8BlockSize = 32;
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQ8BlockSize];
};
static_assert(sizeof(BlockQ8_0) == 34);

// A read-only view of one tensor. `shape` is row-major, outermost first, as in Hugging Face:
// a linear layer's weight is [out_features, in_features]; rows are contiguous.
struct TensorView {
  std::string name;  // name in the file it came from, for error messages
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // nullptr = absent (e.g. no bias)
  size_t nbytes = 0;

  bool present() const { return data != nullptr; }
  int64_t rows() const { return shape.empty() ? 0 : shape.front(); }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

struct LayerWeights {
  TensorView attn_norm;             // [hidden]
  TensorView wq, wk, wv;            // [heads*head_dim, hidden], [kv_heads*head_dim, hidden] x2
  TensorView bq, bk, bv;            // optional biases (Qwen2)
  TensorView wo;                    // [hidden, heads*head_dim]
  TensorView ffn_norm;              // [hidden]
  TensorView w_gate, w_up;          // [ffn, hidden]
  TensorView w_down;                // [hidden, ffn]
};

struct ModelWeights {
  ModelConfig config;
  TensorView tok_embeddings;  // [vocab, hidden]
  TensorView final_norm;      // [hidden]
  TensorView lm_head;         // [vocab, hidden]; equals tok_embeddings when tied
  std::vector<LayerWeights> layers;
  std::vector<std::shared_ptr<MappedFile>> files;  // keeps the mapped data alive
  // Bytes of all distinct weight tensors (tied embeddings counted once).
  size_t totalBytes() const;
};

}  // namespace turbine::model
