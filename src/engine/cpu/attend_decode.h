// The ISA-independent part of the decode-attention kernel (cpu::attendDecode): in which order
// the cache's rows are read, which are asked for ahead of their use, which query heads go
// through them together. Each kernel file (kernels_avx512.cc, kernels_avx2.cc) supplies the
// vector pieces as a file-local `Ops` type, with L its loader of f32 / f16 / bf16 elements (L::T):
//   template <class L, int H> static void scores(const float* q, const L::T* k, int64_t n,
//       int64_t hd, float scale, float* s, int64_t ctx);      s[h * ctx + t] = scale q_h . k_t
//   template <class L, int H> static void valuesAdd(const float* p, int64_t ps, const L::T* v,
//       int64_t n, int64_t hd, float* out);      out_h += sum_{t < n} p_h[t] v_t (p_h = p + h ps,
//                                                out_h = out + h hd; one block's n rows of V)
//   static void softmax(float* x, int64_t n, float* max, float* sum);   normalised in place; the
//                                                max of x and the sum of exp(x - max) returned
//   static constexpr int kMaxHeads;               query heads per pass its registers allow (2, 4)
//   static bool fourHeads(int64_t hd);           whether 4 heads fit at this head_dim
// Ops and L have internal linkage, so each file's instantiations are its own. This code has no
// target attribute: it only loops and prefetches, and calls the Ops functions compiled for their
// ISA (one call per block and query-head group).
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/prefetch.h"

namespace turbine::engine::cpu::internal::attend {

// Rows of block b (the last one may be partial).
inline int64_t rowsIn(int64_t b, int64_t bs, int64_t ctx) {
  return ctx - b * bs < bs ? ctx - b * bs : bs;
}

// Asks for the rows [0, n) of one block (rows of hd elements, contiguous) into L2: a block of
// every head's rows (32 KiB in f32 for the medium model) and the one in use would not both fit
// in L1. common/prefetch.h says why not __builtin_prefetch (GCC 12 had dropped every prefetch of
// span(); the attention then read its K/V at ~0.6x).
template <class T>
void prefetchRows(const T* rows, int64_t n, int64_t hd) {
  const char* p = reinterpret_cast<const char*>(rows);
  const int64_t bytes = n * hd * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < bytes; i += 64) prefetchL2(p + i);
}

// The query heads of each kv head four (where Ops allows) or two at a time, then one by one:
// fn(j, H) for heads [j, j + H), H as a compile-time constant, each K or V row loaded once per
// group.
template <class Ops, class Fn>
void headGroups(int64_t nq, int64_t hd, Fn&& fn) {
  int64_t j = 0;
  if constexpr (Ops::kMaxHeads >= 4) {
    if (Ops::fourHeads(hd)) {
      for (; j + 4 <= nq; j += 4) fn(j, std::integral_constant<int, 4>{});
    }
  }
  for (; j + 2 <= nq; j += 2) fn(j, std::integral_constant<int, 2>{});
  for (; j < nq; ++j) fn(j, std::integral_constant<int, 1>{});
}

// The AttendDecodeFn: every kv head of one token over a span of its positions, block by block.
// A block's rows of all kv heads lie together in the cache (n_kv * bs * hd elements of K, then
// as many of V), so reading each block's K (then V) for every head before the next block makes
// one run of the cache per block (16 KiB for the medium model in bf16) instead of one per head
// (2 KiB): kernels_bench DecodeAttention +10-35% at 2,048 positions and more on the Zen 5 VM
// (runs this short are too short for the hardware prefetcher to ramp up on: the next block's
// rows are requested while this one's are used).
// Pass 1: the scores of every query head; then each head's softmax over [skip, ctx) (the
// skipped positions get weight 0); pass 2: the weighted sum of V, accumulated in `out`.
template <class Ops, class L>
void span(const float* q, int64_t nq, int64_t n_kv, const void* const* k_any,
          const void* const* v_any, int64_t head_stride, int64_t bs, int64_t ctx, int64_t hd,
          float scale, float* scores, float* out, float* maxes, float* sums, int64_t skip) {
  using T = typename L::T;
  const auto* k_blocks = reinterpret_cast<const T* const*>(k_any);
  const auto* v_blocks = reinterpret_cast<const T* const*>(v_any);
  const int64_t group = nq / n_kv;
  const int64_t n_blocks = (ctx + bs - 1) / bs;
  // Head g's rows of the next block are requested before head g of this block is used, so a
  // block's requests spread over the use of the one before (not measured against all at once:
  // the first version's prefetches were not in its code at all, see prefetchRows).
  auto prefetchHead = [&](const T* const* blocks, int64_t b, int64_t g) {
    if (b < n_blocks) prefetchRows(blocks[b] + g * head_stride, rowsIn(b, bs, ctx), hd);
  };
  for (int64_t g = 0; g < n_kv; ++g) prefetchHead(k_blocks, 0, g);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t n = rowsIn(b, bs, ctx);
    for (int64_t g = 0; g < n_kv; ++g) {
      if (b + 1 < n_blocks) {
        prefetchHead(k_blocks, b + 1, g);
      } else {
        prefetchHead(v_blocks, 0, g);
      }
      const T* k = k_blocks[b] + g * head_stride;
      headGroups<Ops>(group, hd, [&](int64_t j, auto h) {
        const int64_t at = g * group + j;
        Ops::template scores<L, decltype(h)::value>(q + at * hd, k, n, hd, scale,
                                                     scores + at * ctx + b * bs, ctx);
      });
    }
  }
  for (int64_t j = 0; j < nq; ++j) {
    float* s = scores + j * ctx;
    float mx = 0.0f, sum = 0.0f;
    Ops::softmax(s + skip, ctx - skip, &mx, &sum);
    for (int64_t t = 0; t < skip; ++t) s[t] = 0.0f;
    if (maxes != nullptr) maxes[j] = mx;
    if (sums != nullptr) sums[j] = sum;
  }
  for (int64_t i = 0; i < nq * hd; ++i) out[i] = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t n = rowsIn(b, bs, ctx);
    for (int64_t g = 0; g < n_kv; ++g) {
      prefetchHead(v_blocks, b + 1, g);
      const T* v = v_blocks[b] + g * head_stride;
      headGroups<Ops>(group, hd, [&](int64_t j, auto h) {
        const int64_t at = g * group + j;
        Ops::template valuesAdd<L, decltype(h)::value>(scores + at * ctx + b * bs, ctx, v, n, hd,
                                                        out + at * hd);
      });
    }
  }
}

}  // namespace turbine::engine::cpu::internal::attend
