// RopeTable: rotary position embeddings (RoPE) with a cos/sin table precomputed once for
// positions [0, max_positions).
//
// Pairing of the head dimensions (model::RopeStyle):
//   kHalf        : dimension i pairs with i + head_dim/2 (Hugging Face "rotate_half").
//   kInterleaved : dimension 2i pairs with 2i + 1 (GGUF llama files, GPT-J).
// In both styles pair i uses the frequency inv_freq[i] = theta^(-2i/head_dim), rescaled by the
// model's rope_scaling (linear: inv_freq / factor; llama3: the piecewise Llama-3.1 rule).
// The table is computed in double and stored in f32: table[pos][i] = cos/sin(pos * inv_freq[i]).
//
// Thread safety: immutable after create(); apply() may run concurrently from any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"

namespace turbine::engine {

class RopeTable {
 public:
  // InvalidArgument if head_dim is odd or not positive, or max_positions is not positive.
  static Result<RopeTable> create(const model::ModelConfig& config, int32_t max_positions);

  // The scaled inverse frequencies, head_dim/2 of them (exposed for tests).
  static std::vector<double> inverseFrequencies(const model::ModelConfig& config);

  int32_t headDim() const { return head_dim_; }
  int32_t maxPositions() const { return max_positions_; }

  // Rotates `n_heads` consecutive heads of `head_dim` floats in place, all at position `pos`
  // (0 <= pos < maxPositions(); checked by the caller).
  void apply(float* x, int32_t n_heads, int32_t pos) const;

 private:
  RopeTable() = default;
  model::RopeStyle style_ = model::RopeStyle::kHalf;
  int32_t head_dim_ = 0;
  int32_t max_positions_ = 0;
  std::vector<float> cos_;  // [max_positions][head_dim/2]
  std::vector<float> sin_;  // [max_positions][head_dim/2]
};

}  // namespace turbine::engine
