// LlamaModel: the CPU forward pass of the Llama family (Llama 2/3, Mistral, Qwen2: RMSNorm,
// RoPE, grouped-query attention, SwiGLU, optional q/k/v biases, tied embeddings) over a paged KV
// cache that it owns. Implements engine::ModelRunner.
//
// One forward() computes any mix of prefill chunks and decodes in one batched step: the tokens
// of all sequences go through every matmul together ([n_tokens, hidden] x W^T), attention runs
// per sequence through its block table, and only the rows that want logits go through the final
// norm and the lm_head.
//
// Scratch buffers live in the model and grow to the largest step seen (amortized); a step of a
// size seen before allocates nothing.
// Thread safety: not thread-safe; one step at a time, from the engine's step loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"
#include "engine/attention.h"
#include "engine/batch.h"
#include "engine/cpu/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/rope.h"
#include "model/weights.h"

namespace turbine::engine {

struct LlamaModelOptions {
  int threads = 0;          // kernel threads; <= 0: all online cores
  int32_t block_size = 16;  // token positions per KV block
  // KV pool size: num_blocks if > 0; else kv_cache_bytes if > 0; else enough blocks for
  // 4 sequences of max_model_len tokens.
  int32_t num_blocks = 0;
  size_t kv_cache_bytes = 0;
  // KV cache element type; unset ("auto", as vLLM's default): the weights' type for f16 and bf16
  // weights, f16 for q8_0 (as llama.cpp), f32 for f32. Half the bytes of f32: twice the
  // sequences in the same memory, half the attention reads of a decode step.
  std::optional<KvDType> kv_dtype;
  // Longest sequence (positions are < max_model_len); <= 0: the model's
  // max_position_embeddings.
  int32_t max_model_len = 0;
};

// The KV element type LlamaModelOptions::kv_dtype's "auto" picks for these weights.
KvDType autoKvDType(const model::ModelWeights& weights);

class LlamaModel : public ModelRunner {
 public:
  // InvalidArgument when the weights do not form a consistent Llama model (names the tensor and
  // the expected shape); ResourceExhausted when the KV pool cannot be allocated.
  static Result<std::unique_ptr<LlamaModel>> create(
      std::shared_ptr<const model::ModelWeights> weights, const LlamaModelOptions& options);

  int32_t vocabSize() const override { return config().vocab_size; }
  int32_t blockSize() const override { return kv_->blockSize(); }
  int32_t numBlocks() const override { return kv_->numBlocks(); }
  int32_t maxModelLen() const override { return max_model_len_; }

  // InvalidArgument (nothing computed, cache untouched) when: a chunk is empty or a token id is
  // out of [0, vocab), start_pos < 0, a position reaches max_model_len, the block table does not
  // cover the chunk, a block id is out of [0, numBlocks), two chunks write the same cache slot,
  // or `logits` is smaller than numLogits() * vocab.
  Status forward(const Batch& batch, std::span<float> logits) override;

  // One block of the KV pool, all layers (KvCache::blockData); OutOfRange for a bad block id.
  size_t blockBytes() const override { return kv_->bytesPerBlock(); }
  Status readBlock(BlockId block, void* dst) override;
  Status writeBlock(BlockId block, const void* src) override;

  const model::ModelConfig& config() const { return weights_->config; }
  const model::ModelWeights& weights() const { return *weights_; }
  KvCache& kvCache() { return *kv_; }
  const KvCache& kvCache() const { return *kv_; }
  cpu::ThreadPool& threadPool() { return *pool_; }

 private:
  LlamaModel() = default;
  Status validate(const Batch& batch, std::span<float> logits);
  void prepare(const Batch& batch);
  void runLayer(int32_t layer, int64_t n);
  void storeKv(int32_t layer, int64_t n);
  void computeLogits(std::span<float> logits);

  std::shared_ptr<const model::ModelWeights> weights_;
  std::unique_ptr<cpu::ThreadPool> pool_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<RopeTable> rope_;
  PagedAttention attention_;
  int32_t max_model_len_ = 0;

  // Per-step state, sized to the step (capacity kept between steps).
  std::vector<int32_t> tokens_;      // [n]
  std::vector<int32_t> positions_;   // [n]
  std::vector<int32_t> seq_of_;      // [n] index into attn_seqs_
  std::vector<int64_t> logit_rows_;  // rows whose logits are wanted, in batch order
  std::vector<AttentionSeq> attn_seqs_;
  std::vector<int64_t> slot_seen_;  // validation: global slot ids written by this step
  // Activations.
  std::vector<float> x_;     // [n, hidden] residual stream
  std::vector<float> xn_;    // [n, hidden] normed
  std::vector<float> q_;     // [n, heads * head_dim]
  std::vector<float> k_;     // [n, kv_heads * head_dim]
  std::vector<float> v_;     // [n, kv_heads * head_dim]
  std::vector<float> attn_;  // [n, heads * head_dim]
  std::vector<float> tmp_;   // [n, hidden]
  std::vector<float> gate_;  // [n, ffn]
  std::vector<float> up_;    // [n, ffn]
};

}  // namespace turbine::engine
