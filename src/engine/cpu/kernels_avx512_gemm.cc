// The large-m (prefill) GEMM kernels. f32: weights converted to f32 a tile at a time, x packed
// in blocks of 32 rows along the vector lanes, a 12-weight-row x 32-x-row register tile.
// bf16 (AVX512-BF16): y[i, r] = dot(x row i, w row r) with vdpbf16ps (pairs of bf16 products
// accumulated in f32). Per thread: a panel of kNr weight rows is packed k-pair-major (one
// zmm = 16 rows x 2 consecutive k), stays in L2, and is swept by a kMr x kNr register tile
// over all m rows of x (bf16, broadcast a k-pair at a time).
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "engine/cpu/kernels_internal.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace turbine::engine::cpu::internal {
namespace {

constexpr int kNr = 32;  // weight rows per panel: two zmm of f32 outputs
constexpr int kMr = 12;  // x rows (bf16) or weight rows (f32) per register tile: 24 accumulators

std::vector<uint32_t>& panelBuffer() {
  static thread_local std::vector<uint32_t> buf;
  return buf;
}

}  // namespace
}  // namespace turbine::engine::cpu::internal

// Fixed-count loops over register tiles must be fully unrolled, or GCC keeps the tiles in memory.
#define KUNROLL _Pragma("GCC unroll 16")

// The f32 GEMM needs only AVX-512F (+VL/BW): its own region, without the BF16 target.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

namespace turbine::engine::cpu::internal {
namespace {

// ---- f32 GEMM on x packed in blocks of 32 rows -------------------------------------------------
// xp block layout: [k][32] (x rows of the block along the vector lanes). For MR weight rows of
// the f32 tile wt ([rows, k] row-major), acc[r] lanes = dot(x row i, w row r) for 32 rows i.
template <int MR>
void f32Micro(const float* wt, int64_t ldw, int64_t k, const float* xpb, float* y, int64_t ldy,
              int valid) {
  __m512 acc[MR][2];
  KUNROLL for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 a0 = _mm512_loadu_ps(xpb + kk * kXBlock);
    __m512 a1 = _mm512_loadu_ps(xpb + kk * kXBlock + 16);
    KUNROLL for (int r = 0; r < MR; ++r) {
      __m512 b = _mm512_set1_ps(wt[r * ldw + kk]);
      acc[r][0] = _mm512_fmadd_ps(b, a0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(b, a1, acc[r][1]);
    }
  }
  alignas(64) float out[kXBlock];
  KUNROLL for (int r = 0; r < MR; ++r) {
    _mm512_store_ps(out, acc[r][0]);
    _mm512_store_ps(out + 16, acc[r][1]);
    for (int i = 0; i < valid; ++i) y[i * ldy + r] = out[i];
  }
}

void f32MicroTail(int rows, const float* wt, int64_t ldw, int64_t k, const float* xpb, float* y,
                  int64_t ldy, int valid) {
  switch (rows) {
    case 11:
      f32Micro<11>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 10:
      f32Micro<10>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 9:
      f32Micro<9>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 8:
      f32Micro<8>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 7:
      f32Micro<7>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 6:
      f32Micro<6>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 5:
      f32Micro<5>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 4:
      f32Micro<4>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 3:
      f32Micro<3>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 2:
      f32Micro<2>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    case 1:
      f32Micro<1>(wt, ldw, k, xpb, y, ldy, valid);
      break;
    default:
      break;
  }
}

}  // namespace

void gemmF32Avx512(const float* wt, int64_t ldw, int64_t rows, int64_t k, const float* xp,
                   int64_t m, float* y, int64_t ldy) {
  // The register tiles write their 12 x 32 outputs into an L1-resident stage (a y row of up to
  // kStageCols outputs per x row), which is copied to y a row at a time with vector stores.
  // Written straight to y, the tile's 384 scalar stores went to 32 rows of y whose stride is a
  // multiple of 4 KiB for most of a model's matmuls (n = 1024): one L1 set, a miss each, ~18% of
  // the micro-kernel's time.
  constexpr int64_t kStageCols = 96;
  constexpr int64_t kStageLd = kStageCols + 16;  // 448 bytes: the stage's rows spread over sets
  alignas(64) float stage[kXBlock * kStageLd];
  for (int64_t c0 = 0; c0 < rows; c0 += kStageCols) {
    const int64_t cols = rows - c0 < kStageCols ? rows - c0 : kStageCols;
    const float* wc = wt + c0 * ldw;
    const auto tail = static_cast<__mmask16>((1u << (cols % 16)) - 1);
    for (int64_t i0 = 0; i0 < m; i0 += kXBlock) {
      const float* xpb = xp + i0 * k;
      int valid = static_cast<int>(m - i0 < kXBlock ? m - i0 : kXBlock);
      int64_t r = 0;
      for (; r + kMr <= cols; r += kMr) f32Micro<kMr>(wc + r * ldw, ldw, k, xpb, stage + r, kStageLd, valid);
      f32MicroTail(static_cast<int>(cols - r), wc + r * ldw, ldw, k, xpb, stage + r, kStageLd, valid);
      for (int i = 0; i < valid; ++i) {
        const float* src = stage + i * kStageLd;
        float* dst = y + (i0 + i) * ldy + c0;
        int64_t c = 0;
        for (; c + 16 <= cols; c += 16) _mm512_storeu_ps(dst + c, _mm512_load_ps(src + c));
        if (c < cols) _mm512_mask_storeu_ps(dst + c, tail, _mm512_load_ps(src + c));
      }
    }
  }
}

}  // namespace turbine::engine::cpu::internal

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")

namespace turbine::engine::cpu::internal {
namespace {

// ---- small-m bf16 x bf16 (vdpbf16ps) ----------------------------------------------------------
// The low and high halves of v, added.
inline __m256 half(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v),
                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// Sums of four accumulators: lane i of the result = sum of the lanes of a[i].
inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  __m256 h01 = _mm256_hadd_ps(half(a0), half(a1));
  __m256 h23 = _mm256_hadd_ps(half(a2), half(a3));
  __m256 h = _mm256_hadd_ps(h01, h23);
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

inline __m512bh loadBh(const uint16_t* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}
inline __m512bh loadBhMask(const uint16_t* p, __mmask32 mask) {
  return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, p));
}

// y[j * ldy + r] = dot(w row r, xb row j) for r < R, j < J, 32 k per step; each weight vector
// is loaded once for all J rows. Masked tails load zeros, so any k works (odd too).
template <int R, int J, bool kPrefetch>
void dpTile(const uint16_t* w, int64_t k, const uint16_t* xb, float* y, int64_t ldy) {
  __m512 acc[R][J];
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    __m512bh wv[R];
    KUNROLL for (int r = 0; r < R; ++r) {
      // The next R rows (the caller's next block), one cache line per row per step, so that
      // their DRAM reads overlap this block's arithmetic.
      if constexpr (kPrefetch) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (R + r) * k + i), _MM_HINT_T1);
      }
      wv[r] = loadBh(w + r * k + i);
    }
    KUNROLL for (int j = 0; j < J; ++j) {
      __m512bh xv = loadBh(xb + j * k + i);
      KUNROLL for (int r = 0; r < R; ++r) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], wv[r], xv);
    }
  }
  if (i < k) {
    auto mask = static_cast<__mmask32>((1ull << (k - i)) - 1);
    __m512bh wv[R];
    KUNROLL for (int r = 0; r < R; ++r) wv[r] = loadBhMask(w + r * k + i, mask);
    KUNROLL for (int j = 0; j < J; ++j) {
      __m512bh xv = loadBhMask(xb + j * k + i, mask);
      KUNROLL for (int r = 0; r < R; ++r) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], wv[r], xv);
    }
  }
  if constexpr (R == 4) {
    KUNROLL for (int j = 0; j < J; ++j) {
      _mm_storeu_ps(y + j * ldy, reduce4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]));
    }
  } else {
    KUNROLL for (int r = 0; r < R; ++r) {
      KUNROLL for (int j = 0; j < J; ++j) y[j * ldy + r] = _mm512_reduce_add_ps(acc[r][j]);
    }
  }
}

constexpr int kDpTileJ = 6;  // R = 4: 24 accumulators + 4 weight vectors + 1 x vector

template <int R>
void dpRowBlock(const uint16_t* w, int64_t k, const uint16_t* xb, int64_t m, float* y,
                int64_t ldy) {
  int64_t j = 0;
  if (m >= kDpTileJ) {
    dpTile<R, kDpTileJ, true>(w, k, xb, y, ldy);
    j = kDpTileJ;
  }
  for (; j + kDpTileJ <= m; j += kDpTileJ) {
    dpTile<R, kDpTileJ, false>(w, k, xb + j * k, y + j * ldy, ldy);
  }
  switch (m - j) {
    case 5:
      dpTile<R, 5, true>(w, k, xb + j * k, y + j * ldy, ldy);
      break;
    case 4:
      dpTile<R, 4, true>(w, k, xb + j * k, y + j * ldy, ldy);
      break;
    case 3:
      dpTile<R, 3, true>(w, k, xb + j * k, y + j * ldy, ldy);
      break;
    case 2:
      dpTile<R, 2, true>(w, k, xb + j * k, y + j * ldy, ldy);
      break;
    case 1:
      dpTile<R, 1, true>(w, k, xb + j * k, y + j * ldy, ldy);
      break;
    default:
      break;
  }
}

// panel[kp * kNr + c] = bf16 pair (w[c][2kp], w[c][2kp+1]) of rows c < rows, zero beyond.
void packPanel(const uint16_t* w, int64_t k, int rows, uint32_t* panel) {
  int64_t kp_count = k / 2;
  for (int c = 0; c < kNr; ++c) {
    if (c < rows) {
      const auto* row = reinterpret_cast<const uint32_t*>(w + c * k);
      for (int64_t kp = 0; kp < kp_count; ++kp) panel[kp * kNr + c] = row[kp];
    } else {
      for (int64_t kp = 0; kp < kp_count; ++kp) panel[kp * kNr + c] = 0;
    }
  }
}

template <int MR>
void microKernel(const uint32_t* panel, int64_t kp_count, const uint16_t* x, int64_t k, float* y,
                 int64_t ldy, __mmask16 m0, __mmask16 m1) {
  __m512 acc[MR][2];
  KUNROLL for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < kp_count; ++kp) {
    __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(panel + kp * kNr));
    __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(panel + kp * kNr + 16));
    KUNROLL for (int i = 0; i < MR; ++i) {
      uint32_t pair = *reinterpret_cast<const uint32_t*>(x + i * k + 2 * kp);
      __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pair)));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
    }
  }
  KUNROLL for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(y + i * ldy, m0, acc[i][0]);
    _mm512_mask_storeu_ps(y + i * ldy + 16, m1, acc[i][1]);
  }
}

template <int MR>
void sweepRows(const uint32_t* panel, int64_t kp_count, const uint16_t* x, int64_t k, int64_t i,
               float* y, int64_t ldy, __mmask16 m0, __mmask16 m1) {
  microKernel<MR>(panel, kp_count, x + i * k, k, y + i * ldy, ldy, m0, m1);
}

void sweepTail(int64_t left, const uint32_t* panel, int64_t kp_count, const uint16_t* x, int64_t k,
               int64_t i, float* y, int64_t ldy, __mmask16 m0, __mmask16 m1) {
  switch (left) {
    case 11:
      sweepRows<11>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 10:
      sweepRows<10>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 9:
      sweepRows<9>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 8:
      sweepRows<8>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 7:
      sweepRows<7>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 6:
      sweepRows<6>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 5:
      sweepRows<5>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 4:
      sweepRows<4>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 3:
      sweepRows<3>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 2:
      sweepRows<2>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    case 1:
      sweepRows<1>(panel, kp_count, x, k, i, y, ldy, m0, m1);
      break;
    default:
      break;
  }
}

}  // namespace

void gemmBf16Avx512(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const uint16_t* xb,
                    int64_t m, float* y, int64_t ldy) {
  int64_t kp_count = k / 2;
  std::vector<uint32_t>& buf = panelBuffer();
  if (buf.size() < static_cast<size_t>(kp_count * kNr))
    buf.resize(static_cast<size_t>(kp_count * kNr));
  uint32_t* panel = buf.data();
  for (int64_t rp = r0; rp < r1; rp += kNr) {
    int rows = static_cast<int>(r1 - rp < kNr ? r1 - rp : kNr);
    packPanel(w + rp * k, k, rows, panel);
    auto m0 = static_cast<__mmask16>(rows >= 16 ? 0xffff : (1u << rows) - 1);
    auto m1 = static_cast<__mmask16>(rows <= 16 ? 0 : (1u << (rows - 16)) - 1);
    int64_t i = 0;
    for (; i + kMr <= m; i += kMr) sweepRows<kMr>(panel, kp_count, xb, k, i, y + rp, ldy, m0, m1);
    sweepTail(m - i, panel, kp_count, xb, k, i, y + rp, ldy, m0, m1);
  }
}

// m = 1: one weight row against x, four independent accumulators (128 weights a step), so the
// vdpbf16ps chain of one accumulator does not bound the stream. Measured (2 threads, 512 MiB of
// weights on 2 MiB pages, k = 1024, Zen 5 VM): 57 GB/s, the machine's read stream, against 31
// GB/s for the f32-x kernel (dotRowBf16Pairs, compute-bound there) and ~32 GB/s for dpTile<1, 1>.
template <bool kPf>
float dpRow(const uint16_t* w, const uint16_t* xb, int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 128 <= k; i += 128) {
    prefetchAhead<kPf>(w + i, 4);
    a0 = _mm512_dpbf16_ps(a0, loadBh(w + i), loadBh(xb + i));
    a1 = _mm512_dpbf16_ps(a1, loadBh(w + i + 32), loadBh(xb + i + 32));
    a2 = _mm512_dpbf16_ps(a2, loadBh(w + i + 64), loadBh(xb + i + 64));
    a3 = _mm512_dpbf16_ps(a3, loadBh(w + i + 96), loadBh(xb + i + 96));
  }
  for (; i + 32 <= k; i += 32) a0 = _mm512_dpbf16_ps(a0, loadBh(w + i), loadBh(xb + i));
  if (i < k) {
    auto mask = static_cast<__mmask32>((1ull << (k - i)) - 1);
    a1 = _mm512_dpbf16_ps(a1, loadBhMask(w + i, mask), loadBhMask(xb + i, mask));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// Small m: 4 weight rows at a time against all m rows (each weight row read from memory once);
// m <= 3 streams single rows (see kernels_avx512.cc's gemv).
void gemvBf16DpAvx512(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const uint16_t* xb,
                      int64_t m, float* y, int64_t ldy) {
  if (m == 1) {
    withWeightPrefetch([&](auto pf) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dpRow<pf.value>(w + r * k, xb, k);
    });
    return;
  }
  int64_t r = r0;
  if (m > 3) {
    for (; r + 4 <= r1; r += 4) dpRowBlock<4>(w + r * k, k, xb, m, y + r, ldy);
  }
  for (; r < r1; ++r) dpRowBlock<1>(w + r * k, k, xb, m, y + r, ldy);
}

void f32ToBf16Avx512(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(v));
  }
  for (; i < n; i += 16) {
    int64_t left = n - i < 16 ? n - i : 16;
    auto mask = static_cast<__mmask16>((1u << left) - 1);
    __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
    _mm256_mask_storeu_epi16(dst + i, mask, reinterpret_cast<__m256i>(v));
  }
}

}  // namespace turbine::engine::cpu::internal

#pragma GCC pop_options
#undef KUNROLL
