// The contract between the scheduler (which decides what runs in a step and which KV blocks a
// sequence owns) and the model runner (which owns the KV memory and computes the step).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace turbine::engine {

using BlockId = int32_t;

// One sequence's share of a step: a prefill chunk (many tokens) or a decode (one token).
struct SequenceChunk {
  std::span<const int32_t> tokens;        // token ids to compute in this step
  int32_t start_pos = 0;                  // position of tokens[0]; KV for [0, start_pos) is cached
  std::span<const BlockId> block_table;   // block ids covering positions [0, start_pos + tokens.size())
  // Logits for the chunk's last `num_logits` tokens: 1 = the next token's (the chunk ends the
  // sequence), 0 = none (a prefill chunk before the last), tokens.size() = every position
  // (prompt logprobs: position p's row scores the token at p + 1).
  int32_t num_logits = 1;
};

struct Batch {
  std::vector<SequenceChunk> seqs;
  int64_t numTokens() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += static_cast<int64_t>(s.tokens.size());
    return n;
  }
  int32_t numLogits() const {
    int32_t n = 0;
    for (const auto& s : seqs) n += s.num_logits;
    return n;
  }
};

// Computes steps of a model over a paged KV cache that it owns.
// Thread safety: not thread-safe; called only from the engine's step loop.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual int32_t vocabSize() const = 0;
  virtual int32_t blockSize() const = 0;   // tokens per KV block
  virtual int32_t numBlocks() const = 0;   // KV blocks in the pool; valid ids are [0, numBlocks)
  virtual int32_t maxModelLen() const = 0;
  // Writes K/V of every token of the batch into its blocks, and logits [numLogits(), vocab]
  // row-major into `logits` (in the order of batch.seqs, each chunk's num_logits rows in
  // position order).
  virtual Status forward(const Batch& batch, std::span<float> logits) = 0;

  // Block copies for the KV block manager (offload to host / disk and back, kv/block_manager.h).
  // blockBytes(): one block's K/V, all layers, as readBlock() writes it; 0 when the runner
  // cannot copy blocks (then the engine runs without tiers). Never called during forward().
  virtual size_t blockBytes() const { return 0; }
  // Copies block `block` into `dst` (blockBytes() bytes) / overwrites it from `src`.
  virtual Status readBlock(BlockId block, void* dst) {
    (void)block, (void)dst;
    return unimplemented("this model runner cannot copy KV blocks");
  }
  virtual Status writeBlock(BlockId block, const void* src) {
    (void)block, (void)src;
    return unimplemented("this model runner cannot copy KV blocks");
  }
};

}  // namespace turbine::engine
