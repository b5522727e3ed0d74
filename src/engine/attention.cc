#include "engine/attention.h"

#include <cblas.h>

#include <algorithm>

#include "engine/cpu/kernels.h"

namespace turbine::engine {

namespace {

constexpr int32_t kTokensPerItem = 64;

void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

void PagedAttention::buildItems(std::span<const AttentionSeq> seqs, int32_t n_kv_heads,
                                int32_t window, int n_parts) {
  items_.clear();
  double total = 0.0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const AttentionSeq& seq = seqs[s];
    for (int32_t g = 0; g < n_kv_heads; ++g) {
      for (int32_t t0 = 0; t0 < seq.n_tokens; t0 += kTokensPerItem) {
        const int32_t t1 = std::min(seq.n_tokens, t0 + kTokensPerItem);
        // Positions attended: sum over t of (start + t + 1) (at most the window), plus a fixed
        // per-token overhead.
        double seen = seq.start_pos + 0.5 * (t0 + t1 - 1) + 1.0;
        if (window > 0) seen = std::min(seen, static_cast<double>(window));
        const double cost = static_cast<double>(t1 - t0) * (seen + 8.0);
        items_.push_back({static_cast<int32_t>(s), g, t0, t1, cost});
        total += cost;
      }
    }
  }
  // Contiguous split of the items into n_parts equal shares of the cost.
  splits_.assign(static_cast<size_t>(n_parts) + 1, items_.size());
  splits_[0] = 0;
  double acc = 0.0;
  int part = 1;
  for (size_t i = 0; i < items_.size() && part < n_parts; ++i) {
    const double mid = acc + 0.5 * items_[i].cost;
    while (part < n_parts && mid >= total * part / n_parts)
      splits_[static_cast<size_t>(part++)] = i;
    acc += items_[i].cost;
  }
}

void PagedAttention::run(cpu::ThreadPool& pool, const KvCache& cache, int32_t layer,
                         std::span<const AttentionSeq> seqs, const AttentionShape& shape,
                         const float* q, float* out) {
  const int n_parts = std::max(1, pool.size());
  buildItems(seqs, cache.numKvHeads(), shape.window, n_parts);
  if (items_.empty()) return;
  if (scratch_.size() < static_cast<size_t>(n_parts)) scratch_.resize(static_cast<size_t>(n_parts));
  // The products inside an item are small; the pool provides the parallelism.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  pool.parallelFor(n_parts, [&](int, int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      ThreadScratch& scratch = scratch_[static_cast<size_t>(part)];
      for (size_t i = splits_[static_cast<size_t>(part)];
           i < splits_[static_cast<size_t>(part) + 1]; ++i) {
        runItem(items_[i], cache, layer, seqs, shape, q, out, scratch);
      }
    }
  });
}

// A decode (one token): the group's query heads against the K/V rows where the cache holds them
// (f32, f16 or bf16), block by block (cpu::attendDecode), nothing gathered. With a sliding
// window from position lo, the blocks from lo's on, lo's offset in its block skipped.
void PagedAttention::decodeInPlace(const Item& item, const KvCache& cache, int32_t layer,
                                   const AttentionSeq& seq, const AttentionShape& shape,
                                   int32_t lo, const float* q, float* out,
                                   ThreadScratch& scratch) const {
  const int32_t bs = cache.blockSize();
  const int32_t first = lo / bs;
  const int32_t ctx = seq.start_pos + 1 - first * bs;  // positions from block `first` on
  const int32_t group = shape.n_heads / cache.numKvHeads();
  const size_t blocks = static_cast<size_t>((ctx + bs - 1) / bs);
  scratch.k_rows.resize(blocks);
  scratch.v_rows.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const BlockId id = seq.block_table[static_cast<size_t>(first) + b];
    scratch.k_rows[b] = cache.headRows(id, layer, 0, item.kv_head);
    scratch.v_rows[b] = cache.headRows(id, layer, 1, item.kv_head);
  }
  grow(scratch.scores, static_cast<size_t>(group) * static_cast<size_t>(ctx));
  cpu::attendDecode(kvElementType(cache.dtype()), q, group, scratch.k_rows.data(),
                    scratch.v_rows.data(), bs, ctx, cache.headDim(), shape.scale,
                    scratch.scores.data(), out, cache.headDim(), lo - first * bs);
}

// Gathers the item's K and V rows [base, ctx) into contiguous f32 [width][head_dim] buffers
// (base = 0, or the start of the block holding the item's sliding-window start), then per group
// of query rows: S = scale * Q K^T (sgemm), causal (and window) mask + softmax per row, O = S V.
// A decode (one token) takes the group's query heads as the rows of one product; a chunk of
// several tokens takes one query head at a time with the chunk's tokens as rows.
void PagedAttention::runItem(const Item& item, const KvCache& cache, int32_t layer,
                             std::span<const AttentionSeq> seqs, const AttentionShape& shape,
                             const float* q, float* out, ThreadScratch& scratch) const {
  const AttentionSeq& seq = seqs[static_cast<size_t>(item.seq)];
  const int32_t hd = cache.headDim();
  const int32_t bs = cache.blockSize();
  const int32_t group = shape.n_heads / cache.numKvHeads();
  const int32_t ctx = seq.start_pos + item.t1;  // positions any query of the item may see: < ctx
  const int32_t n_tok = item.t1 - item.t0;
  // With a sliding window, the lowest position the item's first query sees.
  const int32_t lo = shape.window > 0 ? std::max(0, seq.start_pos + item.t0 - shape.window + 1) : 0;
  const size_t row_stride = static_cast<size_t>(shape.n_heads) * static_cast<size_t>(hd);
  const size_t first = static_cast<size_t>(seq.row + item.t0) * row_stride +
                       static_cast<size_t>(item.kv_head * group) * static_cast<size_t>(hd);
  if (n_tok == 1 && cpu::canAttendDecode(hd, kvElementType(cache.dtype()))) {
    return decodeInPlace(item, cache, layer, seq, shape, lo, q + first, out + first, scratch);
  }
  // Gathered from the first block the window reaches: local row i is position base + i.
  const int32_t base = lo / bs * bs;
  const int32_t width = ctx - base;
  const size_t kv_elems = static_cast<size_t>(width) * static_cast<size_t>(hd);
  grow(scratch.k, kv_elems);
  grow(scratch.v, kv_elems);
  for (int32_t b = base / bs; b * bs < ctx; ++b) {
    const int32_t n = std::min(bs, ctx - b * bs);
    const BlockId id = seq.block_table[static_cast<size_t>(b)];
    const size_t at = static_cast<size_t>(b * bs - base) * static_cast<size_t>(hd);
    const size_t count = static_cast<size_t>(n) * static_cast<size_t>(hd);
    const float* k = cache.readRowsF32(id, layer, 0, item.kv_head, n, scratch.k.data() + at);
    if (k != scratch.k.data() + at) std::copy_n(k, count, scratch.k.data() + at);
    const float* v = cache.readRowsF32(id, layer, 1, item.kv_head, n, scratch.v.data() + at);
    if (v != scratch.v.data() + at) std::copy_n(v, count, scratch.v.data() + at);
  }
  const bool decode = n_tok == 1;
  const int32_t rows = decode ? group : n_tok;  // rows of one product
  const int32_t products = decode ? 1 : group;  // products per item
  const size_t lda = decode ? static_cast<size_t>(hd) : row_stride;
  grow(scratch.scores, static_cast<size_t>(rows) * static_cast<size_t>(width));
  float* sc = scratch.scores.data();
  for (int32_t j = 0; j < products; ++j) {
    const float* qj = q + first + static_cast<size_t>(j) * static_cast<size_t>(hd);
    float* oj = out + first + static_cast<size_t>(j) * static_cast<size_t>(hd);
    // sc[rows, width] = scale * qj[rows, hd] . K[width, hd]^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, width, hd, shape.scale, qj,
                static_cast<int>(lda), scratch.k.data(), hd, 0.0f, sc, width);
    for (int32_t r = 0; r < rows; ++r) {
      // The query at position p sees local rows [from, to): positions [p - window + 1, p].
      const int32_t p = seq.start_pos + item.t0 + (decode ? 0 : r);
      const int32_t from = shape.window > 0 ? std::max(0, p - shape.window + 1) - base : 0;
      const int32_t to = p + 1 - base;
      float* sr = sc + static_cast<size_t>(r) * static_cast<size_t>(width);
      std::fill(sr, sr + from, 0.0f);
      cpu::softmax(sr + from, to - from);
      std::fill(sr + to, sr + width, 0.0f);
    }
    // oj[rows, hd] = sc[rows, width] . V[width, hd]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, width, 1.0f, sc, width,
                scratch.v.data(), hd, 0.0f, oj, static_cast<int>(lda));
  }
}

}  // namespace turbine::engine
