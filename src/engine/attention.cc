#include "engine/attention.h"

#include <cblas.h>

#include <algorithm>

#include "engine/cpu/kernels.h"

namespace turbine::engine {

namespace {

constexpr int32_t kTokensPerItem = 64;
// A decode token's context is split into spans of at least this many blocks (a shorter context
// into one span).
constexpr int32_t kMinSpanBlocks = 2;

void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// The lowest position the query at position p sees.
int32_t windowStart(int32_t p, int32_t window) { return window > 0 ? std::max(0, p - window + 1) : 0; }

}  // namespace

void PagedAttention::buildItems(std::span<const AttentionSeq> seqs, const KvCache& cache,
                                const AttentionShape& shape, int n_parts) {
  items_.clear();
  merges_.clear();
  const int32_t n_kv_heads = cache.numKvHeads(), bs = cache.blockSize(), window = shape.window;
  const bool in_place = cpu::canAttendDecode(cache.headDim(), kvElementType(cache.dtype()));
  // Decode tokens: about two spans per thread over all their blocks, so that one long context
  // keeps every thread busy and many short ones are one span each.
  int64_t decode_blocks = 0;
  for (const AttentionSeq& seq : seqs) {
    if (in_place && seq.n_tokens == 1) {
      decode_blocks += seq.start_pos / bs - windowStart(seq.start_pos, window) / bs + 1;
    }
  }
  const auto span_blocks = static_cast<int32_t>(std::max<int64_t>(
      kMinSpanBlocks, (decode_blocks + 2 * n_parts - 1) / (2 * n_parts)));
  int32_t spans = 0;
  double total = 0.0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const AttentionSeq& seq = seqs[s];
    if (in_place && seq.n_tokens == 1) {
      const int32_t first = windowStart(seq.start_pos, window) / bs;
      const int32_t ctx = seq.start_pos + 1 - first * bs;  // positions from block `first` on
      const int32_t nb = seq.start_pos / bs - first + 1;
      const int32_t n_spans = (nb + span_blocks - 1) / span_blocks;
      if (n_spans > 1) merges_.push_back({static_cast<int32_t>(s), spans, n_spans});
      for (int32_t k = 0; k < n_spans; ++k) {
        const int32_t b0 = k * nb / n_spans, b1 = (k + 1) * nb / n_spans;
        const double cost = n_kv_heads * (std::min(ctx, b1 * bs) - b0 * bs + 8.0);
        items_.push_back({static_cast<int32_t>(s), -1, 0, 1, cost, b0, b1, n_spans > 1 ? spans++ : -1});
        total += cost;
      }
      continue;
    }
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
  const size_t heads = static_cast<size_t>(shape.n_heads);
  grow(span_out_, static_cast<size_t>(spans) * heads * static_cast<size_t>(cache.headDim()));
  grow(span_max_, static_cast<size_t>(spans) * heads);
  grow(span_sum_, static_cast<size_t>(spans) * heads);
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
  buildItems(seqs, cache, shape, n_parts);
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
  const int64_t nq = shape.n_heads, hd = cache.headDim();
  for (const Merge& m : merges_) {
    const auto at = static_cast<size_t>(m.first_span);
    cpu::mergeAttentionSpans(span_out_.data() + at * static_cast<size_t>(nq * hd),
                             span_max_.data() + at * static_cast<size_t>(nq),
                             span_sum_.data() + at * static_cast<size_t>(nq), m.n_spans, nq, hd,
                             out + seqs[static_cast<size_t>(m.seq)].row * nq * hd);
  }
}

// A decode span: every query head against blocks [b0, b1) of those the token's window reaches,
// where the cache holds them (f32, f16 or bf16; cpu::attendDecode), nothing gathered. With a
// sliding window from position lo, lo's offset in its block skipped (first span only).
void PagedAttention::decodeSpan(const Item& item, const KvCache& cache, int32_t layer,
                                const AttentionSeq& seq, const AttentionShape& shape,
                                const float* q, float* out, ThreadScratch& scratch) {
  const int32_t bs = cache.blockSize();
  const int32_t lo = windowStart(seq.start_pos, shape.window);
  const int32_t first = lo / bs;
  const int32_t ctx = std::min(seq.start_pos + 1 - first * bs, item.b1 * bs) - item.b0 * bs;
  const int32_t skip = item.b0 == 0 ? lo - first * bs : 0;
  const auto blocks = static_cast<size_t>(item.b1 - item.b0);
  scratch.k_rows.resize(blocks);
  scratch.v_rows.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const BlockId id = seq.block_table[static_cast<size_t>(first + item.b0) + b];
    scratch.k_rows[b] = cache.headRows(id, layer, 0, 0);
    scratch.v_rows[b] = cache.headRows(id, layer, 1, 0);
  }
  const int64_t nq = shape.n_heads, hd = cache.headDim();
  grow(scratch.scores, static_cast<size_t>(nq) * static_cast<size_t>(ctx));
  const int64_t row = seq.row * nq * hd;
  float* o = out + row;
  float* maxes = nullptr;
  float* sums = nullptr;
  if (item.span >= 0) {
    const auto at = static_cast<size_t>(item.span);
    o = span_out_.data() + at * static_cast<size_t>(nq * hd);
    maxes = span_max_.data() + at * static_cast<size_t>(nq);
    sums = span_sum_.data() + at * static_cast<size_t>(nq);
  }
  cpu::attendDecode(kvElementType(cache.dtype()), q + row, nq, cache.numKvHeads(),
                    scratch.k_rows.data(), scratch.v_rows.data(),
                    static_cast<int64_t>(cache.headStride()), bs, ctx, hd, shape.scale,
                    scratch.scores.data(), o, maxes, sums, skip);
}

// Gathers the item's K and V rows [base, ctx) into contiguous f32 [width][head_dim] buffers
// (base = 0, or the start of the block holding the item's sliding-window start), then per group
// of query rows: S = scale * Q K^T (sgemm), causal (and window) mask + softmax per row, O = S V.
// A decode (one token) takes the group's query heads as the rows of one product; a chunk of
// several tokens takes one query head at a time with the chunk's tokens as rows.
void PagedAttention::runItem(const Item& item, const KvCache& cache, int32_t layer,
                             std::span<const AttentionSeq> seqs, const AttentionShape& shape,
                             const float* q, float* out, ThreadScratch& scratch) {
  const AttentionSeq& seq = seqs[static_cast<size_t>(item.seq)];
  if (item.kv_head < 0) return decodeSpan(item, cache, layer, seq, shape, q, out, scratch);
  const int32_t hd = cache.headDim();
  const int32_t bs = cache.blockSize();
  const int32_t group = shape.n_heads / cache.numKvHeads();
  const int32_t ctx = seq.start_pos + item.t1;  // positions any query of the item may see: < ctx
  const int32_t n_tok = item.t1 - item.t0;
  // With a sliding window, the lowest position the item's first query sees.
  const int32_t lo = windowStart(seq.start_pos + item.t0, shape.window);
  const size_t row_stride = static_cast<size_t>(shape.n_heads) * static_cast<size_t>(hd);
  const size_t first = static_cast<size_t>(seq.row + item.t0) * row_stride +
                       static_cast<size_t>(item.kv_head * group) * static_cast<size_t>(hd);
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
