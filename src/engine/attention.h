// PagedAttention: causal multi-head attention (with grouped-query heads) whose keys and values
// are read from a KvCache through each sequence's block table.
//
// For a sequence whose chunk covers positions [start_pos, start_pos + n_tokens), the query at
// position p attends to the cached positions [0, p] (so a chunk is causal within itself and
// sees all of its prefix), or [p - window + 1, p] with a sliding window; position j lives in
// block block_table[j / block_size], slot j % block_size. The K/V of every position read must already be stored in the cache (the
// runner stores the chunk's own K/V before calling run()).
// Scores and the weighted sum are f32 products (BLAS sgemm) over K/V gathered per item;
// softmax is max-subtracted in f32. A decode token reads K/V in place (f32, f16 or bf16), block by
// block and every kv head of a block at once, with the AVX-512 or AVX2 kernels where the CPU has
// them (cpu::attendDecode), from the block where its sliding window (if any) starts.
// Work is split over the ThreadPool with equal shares of the estimated cost (the number of
// positions attended): prefill chunks by (sequence, kv head, token range), decode tokens by
// spans of their blocks (flash-decoding's split: a long context of few sequences is spread over
// the threads, the spans' softmaxes merged after).
//
// Thread safety: run() is not reentrant (it owns its scratch); call it from one thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/batch.h"
#include "engine/cpu/thread_pool.h"
#include "engine/kv_cache.h"

namespace turbine::engine {

struct AttentionSeq {
  int32_t start_pos = 0;                 // position of the chunk's first token
  int32_t n_tokens = 0;                  // tokens of the chunk
  int64_t row = 0;                       // row of the chunk's first token in q / out
  std::span<const BlockId> block_table;  // must cover [0, start_pos + n_tokens)
};

struct AttentionShape {
  int32_t n_heads = 0;  // query heads; a multiple of the cache's kv heads
  float scale = 0.0f;   // usually 1 / sqrt(head_dim)
  // > 0: sliding-window attention, the query at position p sees [p - window + 1, p] only.
  int32_t window = 0;
};

class PagedAttention {
 public:
  // q, out: [total rows][n_heads * head_dim] f32 (out must not alias q). Rows of tokens that
  // belong to no sequence in `seqs` are left untouched.
  void run(cpu::ThreadPool& pool, const KvCache& cache, int32_t layer,
           std::span<const AttentionSeq> seqs, const AttentionShape& shape, const float* q,
           float* out);

 private:
  struct Item {
    int32_t seq;
    int32_t kv_head;  // -1: a decode span (every kv head)
    int32_t t0, t1;   // token range within the chunk
    double cost;
    // A decode span: blocks [b0, b1) of those its window reaches; its output goes to the span
    // buffers at `span`, or (-1: the token's only span) straight to `out`.
    int32_t b0 = 0, b1 = 0, span = -1;
  };
  // A decode token whose spans' outputs are merged into its row of `out`.
  struct Merge {
    int32_t seq;
    int32_t first_span, n_spans;
  };
  struct ThreadScratch {
    std::vector<float> k, v;    // the item's keys / values gathered: [context][head_dim]
    std::vector<float> scores;  // [rows][context]
    std::vector<const void*> k_rows, v_rows;  // a decode's K / V rows by block (decodeInPlace)
  };
  void buildItems(std::span<const AttentionSeq> seqs, const KvCache& cache,
                  const AttentionShape& shape, int n_parts);
  void decodeSpan(const Item& item, const KvCache& cache, int32_t layer, const AttentionSeq& seq,
                  const AttentionShape& shape, const float* q, float* out,
                  ThreadScratch& scratch);
  void runItem(const Item& item, const KvCache& cache, int32_t layer,
               std::span<const AttentionSeq> seqs, const AttentionShape& shape, const float* q,
               float* out, ThreadScratch& scratch);

  std::vector<Item> items_;
  std::vector<Merge> merges_;
  // Outputs of the spans of tokens with several: [span][n_heads][head_dim], and each span's
  // softmax max and sum per head ([span][n_heads]).
  std::vector<float> span_out_, span_max_, span_sum_;
  std::vector<size_t> splits_;  // part k runs items_[splits_[k], splits_[k + 1])
  std::vector<ThreadScratch> scratch_;
};

}  // namespace turbine::engine
