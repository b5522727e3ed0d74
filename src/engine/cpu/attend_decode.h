// The ISA-independent part of the decode-attention kernel (cpu::attendDecode): which query heads
// go through the cache together, which K/V rows are asked for ahead of their use, and the order
// of the pieces. Each kernel file (kernels_avx512.cc, kernels_avx2.cc) supplies the vector pieces
// as a file-local `Ops` type, with L its loader of f32 / f16 / bf16 elements (L::T):
//   template <class L, int H> static void scores(const float* q, const L::T* k, int64_t n,
//       int64_t hd, float scale, float* s, int64_t ctx);      s[h * ctx + t] = scale q_h . k_t
//   template <class L, int H> static void values(const float* p, const L::T* const* v_blocks,
//       int64_t bs, int64_t ctx, int64_t hd, float* out, int64_t ldo);   out_h = sum_t p_h[t] v_t
//   static void softmax(float* x, int64_t n);
//   static constexpr int kMaxHeads;               query heads per pass its registers allow (2, 4)
//   static bool fourHeads(int64_t hd);           whether 4 heads fit at this head_dim
// Ops and L have internal linkage, so each file's instantiations are its own. This code has no
// target attribute: it only loops and prefetches, and calls the Ops functions compiled for their
// ISA (one call per block and query-head group).
#pragma once

#include <cstdint>

namespace turbine::engine::cpu::internal::attend {

// Rows of block b (the last one may be partial).
inline int64_t rowsIn(int64_t b, int64_t bs, int64_t ctx) {
  return ctx - b * bs < bs ? ctx - b * bs : bs;
}

// Asks for the rows [0, n) of one block (rows of hd elements, contiguous): into L1 (and L2) or
// into L2.
template <class T>
void prefetchRows(const T* rows, int64_t n, int64_t hd, bool to_l1) {
  const char* p = reinterpret_cast<const char*>(rows);
  const int64_t bytes = n * hd * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < bytes; i += 64) {
    if (to_l1) {
      __builtin_prefetch(p + i, 0, 3);
    } else {
      __builtin_prefetch(p + i, 0, 2);
    }
  }
}

// H query heads (q, scores, out at head strides hd, ctx, ldo) against one kv head's blocks,
// positions [skip, ctx) (the skipped ones get weight 0: V's pass stays whole-block). The
// first group's pass over K (`first`) fetches the next block's K rows and this block's V rows
// ahead of their use: the cache's blocks lie apart (one per 1-4 KiB of a larger block), each too
// short for the hardware prefetcher to ramp up on (a 64 KiB window at once measured worse).
template <class Ops, class L, int H>
void heads(const float* q, const typename L::T* const* k_blocks,
           const typename L::T* const* v_blocks, int64_t bs, int64_t ctx, int64_t hd, float scale,
           float* scores, float* out, int64_t ldo, bool first, int64_t skip) {
  const int64_t n_blocks = (ctx + bs - 1) / bs;
  if (first && n_blocks > 0) prefetchRows(k_blocks[0], rowsIn(0, bs, ctx), hd, true);
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (first) {
      if (b + 1 < n_blocks) prefetchRows(k_blocks[b + 1], rowsIn(b + 1, bs, ctx), hd, true);
      prefetchRows(v_blocks[b], rowsIn(b, bs, ctx), hd, false);
    }
    Ops::template scores<L, H>(q, k_blocks[b], rowsIn(b, bs, ctx), hd, scale, scores + b * bs,
                               ctx);
  }
  for (int h = 0; h < H; ++h) {
    float* s = scores + h * ctx;
    Ops::softmax(s + skip, ctx - skip);
    for (int64_t t = 0; t < skip; ++t) s[t] = 0.0f;
  }
  Ops::template values<L, H>(scores, v_blocks, bs, ctx, hd, out, ldo);
}

// The AttendDecodeFn: the group's query heads four (where Ops allows) or two at a time, then one
// by one, each K and V vector loaded once per group.
template <class Ops, class L>
void decode(const float* q, int64_t nq, const void* const* k_any, const void* const* v_any,
            int64_t bs, int64_t ctx, int64_t hd, float scale, float* scores, float* out,
            int64_t ldo, int64_t skip) {
  using T = typename L::T;
  const auto* k_blocks = reinterpret_cast<const T* const*>(k_any);
  const auto* v_blocks = reinterpret_cast<const T* const*>(v_any);
  int64_t j = 0;
  if constexpr (Ops::kMaxHeads >= 4) {
    if (Ops::fourHeads(hd)) {
      for (; j + 4 <= nq; j += 4) {
        heads<Ops, L, 4>(q + j * hd, k_blocks, v_blocks, bs, ctx, hd, scale, scores + j * ctx,
                         out + j * ldo, ldo, j == 0, skip);
      }
    }
  }
  for (; j + 2 <= nq; j += 2) {
    heads<Ops, L, 2>(q + j * hd, k_blocks, v_blocks, bs, ctx, hd, scale, scores + j * ctx,
                     out + j * ldo, ldo, j == 0, skip);
  }
  for (; j < nq; ++j) {
    heads<Ops, L, 1>(q + j * hd, k_blocks, v_blocks, bs, ctx, hd, scale, scores + j * ctx,
                     out + j * ldo, ldo, j == 0, skip);
  }
}

}  // namespace turbine::engine::cpu::internal::attend
