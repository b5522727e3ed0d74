// AVX-512 kernels (F, BW, VL, VNNI; FMA, F16C). The GEMMs are in kernels_avx512_gemm.cc.
// Everything below the target pragma lives in an anonymous namespace: internal linkage, so no
// AVX-512 copy of an inline function can be picked by the linker for generic code.
#include <immintrin.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/cpu/attend_decode.h"
#include "engine/cpu/kernels_internal.h"

// GCC 12's own _mm512_reduce_add_ps & co. trip -Wuninitialized (their _mm256_undefined_*).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Fixed-count loops over register tiles must be fully unrolled, or GCC keeps the tiles in memory.
#define KUNROLL _Pragma("GCC unroll 16")

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")

namespace turbine::engine::cpu::internal {
namespace {

using model::BlockQ8_0;
using model::kQ8BlockSize;

inline int64_t minI64(int64_t a, int64_t b) { return a < b ? a : b; }
inline __mmask16 tailMask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

// ---- weight loaders: 16 consecutive weights of a row as f32 --------------------------------
struct LoadF32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 loadMask(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 loadMask(const uint16_t* p, __mmask16 k) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
  }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const uint16_t* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 loadMask(const uint16_t* p, __mmask16 k) {
    return widen(_mm256_maskz_loadu_epi16(k, p));
  }
};

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

// y[j * ldy + r] = dot(w row r, x row j) for r < R, j < J; w rows and x rows have k columns.
// Each weight vector is loaded (and converted) once for all J activation rows.
template <class L, int R, int J, bool kPrefetch>
void gemvTile(const typename L::T* w, int64_t k, const float* x, float* y, int64_t ldy) {
  __m512 acc[R][J];
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[R];
    KUNROLL for (int r = 0; r < R; ++r) {
      // The next R rows (the caller's next block), so that their DRAM reads overlap this
      // block's arithmetic.
      if constexpr (kPrefetch) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (R + r) * k + i), _MM_HINT_T1);
      }
      wv[r] = L::load(w + r * k + i);
    }
    KUNROLL for (int j = 0; j < J; ++j) {
      __m512 xv = _mm512_loadu_ps(x + j * k + i);
      KUNROLL for (int r = 0; r < R; ++r) acc[r][j] = _mm512_fmadd_ps(wv[r], xv, acc[r][j]);
    }
  }
  if (i < k) {
    __mmask16 mask = tailMask(k - i);
    __m512 wv[R];
    KUNROLL for (int r = 0; r < R; ++r) wv[r] = L::loadMask(w + r * k + i, mask);
    KUNROLL for (int j = 0; j < J; ++j) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + j * k + i);
      KUNROLL for (int r = 0; r < R; ++r) acc[r][j] = _mm512_fmadd_ps(wv[r], xv, acc[r][j]);
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

// All m activation rows against R weight rows: tiles of kTileJ activation rows (R = 4: 24
// accumulators + 4 weight vectors + 1 x vector of the 32 registers).
constexpr int kTileJ = 6;

template <class L, int R>
void gemvRowBlock(const typename L::T* w, int64_t k, const float* x, int64_t m, float* y,
                  int64_t ldy) {
  int64_t j = 0;
  if (m >= kTileJ) {
    gemvTile<L, R, kTileJ, true>(w, k, x, y, ldy);
    j = kTileJ;
  }
  for (; j + kTileJ <= m; j += kTileJ) {
    gemvTile<L, R, kTileJ, false>(w, k, x + j * k, y + j * ldy, ldy);
  }
  switch (m - j) {
    case 5:
      gemvTile<L, R, 5, true>(w, k, x + j * k, y + j * ldy, ldy);
      break;
    case 4:
      gemvTile<L, R, 4, true>(w, k, x + j * k, y + j * ldy, ldy);
      break;
    case 3:
      gemvTile<L, R, 3, true>(w, k, x + j * k, y + j * ldy, ldy);
      break;
    case 2:
      gemvTile<L, R, 2, true>(w, k, x + j * k, y + j * ldy, ldy);
      break;
    case 1:
      gemvTile<L, R, 1, true>(w, k, x + j * k, y + j * ldy, ldy);
      break;
    default:
      break;
  }
}

// One weight row against one activation row, 4 independent accumulators (64 per step).
template <class L, bool kPf = false>
float dotRow(const typename L::T* w, const float* x, int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    prefetchAhead<kPf>(w + i, static_cast<int>(sizeof(typename L::T)));  // 64 weights
    a0 = _mm512_fmadd_ps(L::load(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(L::load(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(L::load(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(L::load(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i < k; i += 16) {
    __mmask16 mask = tailMask(minI64(16, k - i));
    a0 = _mm512_fmadd_ps(L::loadMask(w + i, mask), _mm512_maskz_loadu_ps(mask, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// bf16 at m = 1: one 64-byte load holds 32 weights; as 16 32-bit lanes, each lane's high half is
// an odd-indexed weight and its low half an even-indexed one, so `lanes & 0xffff0000` and
// `lanes << 16` are the odd and even weights as f32, two cheap integer ops per 32 weights
// against two widening shuffles and two shifts for 16-weight loads. x is given with each
// 32-block de-interleaved to match: xp[32b + j] = x[32b + 2j], xp[32b + 16 + j] = x[32b + 2j + 1]
// (j < 16). Same products as dotRow<LoadBF16>, summed in another order. Measured (1 thread, 2 MiB
// pages, k = 1024): 22-24 GB/s against 14-15 for dotRow<LoadBF16>, the rate of f32 rows.
void deinterleaveX(const float* x, int64_t k, float* xp) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t i = 0; i + 32 <= k; i += 32) {
    __m512 lo = _mm512_loadu_ps(x + i), hi = _mm512_loadu_ps(x + i + 16);
    _mm512_storeu_ps(xp + i, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_storeu_ps(xp + i + 16, _mm512_permutex2var_ps(lo, odd, hi));
  }
}

inline __m512 evenBf16(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
inline __m512 oddBf16(__m512i v, __m512i high) {
  return _mm512_castsi512_ps(_mm512_and_si512(v, high));
}

template <bool kPf>
float dotRowBf16Pairs(const uint16_t* w, const float* xp, const float* x, int64_t k) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    prefetchAhead<kPf>(w + i, 2);
    __m512i v0 = _mm512_loadu_si512(w + i), v1 = _mm512_loadu_si512(w + i + 32);
    a0 = _mm512_fmadd_ps(evenBf16(v0), _mm512_loadu_ps(xp + i), a0);
    a1 = _mm512_fmadd_ps(oddBf16(v0, high), _mm512_loadu_ps(xp + i + 16), a1);
    a2 = _mm512_fmadd_ps(evenBf16(v1), _mm512_loadu_ps(xp + i + 32), a2);
    a3 = _mm512_fmadd_ps(oddBf16(v1, high), _mm512_loadu_ps(xp + i + 48), a3);
  }
  if (i + 32 <= k) {
    __m512i v0 = _mm512_loadu_si512(w + i);
    a0 = _mm512_fmadd_ps(evenBf16(v0), _mm512_loadu_ps(xp + i), a0);
    a1 = _mm512_fmadd_ps(oddBf16(v0, high), _mm512_loadu_ps(xp + i + 16), a1);
    i += 32;
  }
  for (; i < k; i += 16) {  // the last k % 32 weights, in natural order against x
    __mmask16 mask = tailMask(minI64(16, k - i));
    a2 = _mm512_fmadd_ps(LoadBF16::loadMask(w + i, mask), _mm512_maskz_loadu_ps(mask, x + i), a2);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// f16 at m = 1: whole 64-byte loads (32 weights), each half converted with vcvtph2ps, rather
// than 32-byte loads. Same products as dotRow<LoadF16>, the same x order. Measured (1 thread,
// 2 MiB pages, k = 1024): 23-26 GB/s against 17-19 for dotRow<LoadF16>.
template <bool kPf>
float dotRowF16Wide(const uint16_t* w, const float* x, int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    prefetchAhead<kPf>(w + i, 2);
    __m512i v0 = _mm512_loadu_si512(w + i), v1 = _mm512_loadu_si512(w + i + 32);
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(v0)), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(v0, 1)),
                         _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(v1)), _mm512_loadu_ps(x + i + 32),
                         a2);
    a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(v1, 1)),
                         _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i < k; i += 16) {
    __mmask16 mask = tailMask(minI64(16, k - i));
    a0 = _mm512_fmadd_ps(LoadF16::loadMask(w + i, mask), _mm512_maskz_loadu_ps(mask, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// Memory-bound (m <= kStreamRows): rows one at a time, so that each thread streams one
// contiguous run of weights, which the hardware prefetchers follow best (measured: 1.5x the
// rate of 4- or 8-row tiles on a loaded machine). Compute-bound (larger m): 4-row x 6-x-row
// register tiles, which load and convert each weight vector once for 6 x rows and each x
// vector once for 4 weight rows (R = 1 was L2-bound at m = 8..16).
constexpr int64_t kStreamRows = 3;

template <class L>
void gemv(const typename L::T* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m,
          float* y, int64_t ldy) {
  if (m == 1) {
    withWeightPrefetch([&](auto pf) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dotRow<L, pf.value>(w + r * k, x, k);
    });
    return;
  }
  int64_t r = r0;
  if (m > kStreamRows) {
    for (; r + 4 <= r1; r += 4) gemvRowBlock<L, 4>(w + r * k, k, x, m, y + r, ldy);
  }
  for (; r < r1; ++r) gemvRowBlock<L, 1>(w + r * k, k, x, m, y + r, ldy);
}

void gemvF32(const float* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m, float* y,
             int64_t ldy) {
  gemv<LoadF32>(w, k, r0, r1, x, m, y, ldy);
}
void gemvF16(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m,
             float* y, int64_t ldy) {
  if (m == 1) {
    withWeightPrefetch([&](auto pf) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dotRowF16Wide<pf.value>(w + r * k, x, k);
    });
    return;
  }
  gemv<LoadF16>(w, k, r0, r1, x, m, y, ldy);
}
void gemvBf16(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m,
              float* y, int64_t ldy) {
  if (m == 1) {
    static thread_local std::vector<float> xp_buf;
    if (xp_buf.size() < static_cast<size_t>(k)) xp_buf.resize(static_cast<size_t>(k));
    deinterleaveX(x, k, xp_buf.data());
    withWeightPrefetch([&](auto pf) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dotRowBf16Pairs<pf.value>(w + r * k, xp_buf.data(), x, k);
    });
    return;
  }
  gemv<LoadBF16>(w, k, r0, r1, x, m, y, ldy);
}

// ---- q8_0 x q8_0 with VNNI ------------------------------------------------------------------
// vpdpbusd multiplies unsigned by signed bytes. With u = w + 128 (w xor 0x80):
// sum(u * x) = sum(w * x) + 128 * sum(x), so starting the int32 accumulator at -128 * sum(x)
// leaves the signed dot product.
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R, int J, bool kPrefetch>
void q8Tile(const BlockQ8_0* w, int64_t nb, const Q8Rows& x, int64_t j0, float* y, int64_t ldy) {
  __m256 acc[R][J];
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
  }
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    __m256i wv[R];
    __m256 dw[R];
    KUNROLL for (int r = 0; r < R; ++r) {
      if constexpr (kPrefetch) {  // the next R rows: see gemvTile
        _mm_prefetch(reinterpret_cast<const char*>(&w[(R + r) * nb + b]), _MM_HINT_T1);
      }
      const BlockQ8_0& blk = w[r * nb + b];
      wv[r] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs)), flip);
      dw[r] = _mm256_set1_ps(_cvtsh_ss(blk.d));
    }
    KUNROLL for (int j = 0; j < J; ++j) {
      int64_t xb = (j0 + j) * nb + b;
      __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + xb * kQ8BlockSize));
      __m256i corr = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-128 * x.sum[xb]));
      __m256 dx = _mm256_set1_ps(x.d[xb]);
      KUNROLL for (int r = 0; r < R; ++r) {
        __m256 s = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, wv[r], xq));
        acc[r][j] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw[r], dx), acc[r][j]);
      }
    }
  }
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) y[j * ldy + r] = hsum256(acc[r][j]);
  }
}

template <int R>
void q8RowBlock(const BlockQ8_0* w, int64_t nb, const Q8Rows& x, int64_t m, float* y, int64_t ldy) {
  int64_t j = 0;
  if (m >= 4) {
    q8Tile<R, 4, true>(w, nb, x, 0, y, ldy);
    j = 4;
  }
  for (; j + 4 <= m; j += 4) q8Tile<R, 4, false>(w, nb, x, j, y + j * ldy, ldy);
  switch (m - j) {
    case 3:
      q8Tile<R, 3, true>(w, nb, x, j, y + j * ldy, ldy);
      break;
    case 2:
      q8Tile<R, 2, true>(w, nb, x, j, y + j * ldy, ldy);
      break;
    case 1:
      q8Tile<R, 1, true>(w, nb, x, j, y + j * ldy, ldy);
      break;
    default:
      break;
  }
}

// One q8_0 weight row against activation row 0: q8Tile<1, 1> with 4 accumulators in flight.
template <bool kPf>
float dotRowQ8(const BlockQ8_0* w, int64_t nb, const Q8Rows& x) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 acc[4];
  KUNROLL for (int u = 0; u < 4; ++u) acc[u] = _mm256_setzero_ps();
  int64_t b = 0;
  auto step = [&](int u, int64_t blk) {
    __m256i wv =
        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[blk].qs)), flip);
    __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + blk * kQ8BlockSize));
    __m256i corr = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-128 * x.sum[blk]));
    __m256 s = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, wv, xq));
    acc[u] = _mm256_fmadd_ps(s, _mm256_set1_ps(_cvtsh_ss(w[blk].d) * x.d[blk]), acc[u]);
  };
  for (; b + 4 <= nb; b += 4) {
    prefetchAhead<kPf>(w + b, 3);  // 4 blocks: 136 bytes
    KUNROLL for (int u = 0; u < 4; ++u) step(u, b + u);
  }
  for (; b < nb; ++b) step(0, b);
  return hsum256(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// Pairs of vectors a, b whose 2G-lane groups are partial sums: lane-group g of a (b) becomes
// lanes [g * G, g * G + G) of the result (b's after a's), each the sum of its group's two halves.
// Three such steps turn 8 vectors of per-block dot products (2 blocks of 8 lanes each) into one
// vector of 16 block sums, in block order.
template <int G, int Half>  // Half 0: each group's first G lanes, 1: its last G
constexpr std::array<int32_t, 16> foldIndex() {
  std::array<int32_t, 16> idx{};
  for (int l = 0; l < 16; ++l) idx[l] = (l / G) * 2 * G + Half * G + l % G;  // a: 0-15, b: 16-31
  return idx;
}
template <int G>
inline __m512i foldHalves(__m512i a, __m512i b) {
  alignas(64) static constexpr std::array<int32_t, 16> kLo = foldIndex<G, 0>(), kHi = foldIndex<G, 1>();
  return _mm512_add_epi32(_mm512_permutex2var_epi32(a, _mm512_load_si512(kLo.data()), b),
                          _mm512_permutex2var_epi32(a, _mm512_load_si512(kHi.data()), b));
}

// One q8_0 weight row against activation row 0, 16 blocks per step: two blocks per 512-bit
// vpdpbusd, the 16 blocks' lane sums folded into one vector (foldHalves), then their scales in
// one go (the weights' f16 scales gathered). dotRowQ8 spends ~10 instructions per block, most of
// them on its scalars (the scale product, the correction), and ran from L2 at 20 GB/s on one
// Intel core against bf16's 31: compute-bound. The remainder (nb % 16) goes block by block.
template <bool kPf>
float dotRowQ8Wide(const BlockQ8_0* w, int64_t nb, const Q8Rows& x) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i zero = _mm512_setzero_si512();
  const __m512i scale_at = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(sizeof(BlockQ8_0))));
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    prefetchAhead<kPf>(w + b, 9);  // 16 blocks: 544 bytes
    __m512i dots[8];
    KUNROLL for (int p = 0; p < 8; ++p) {
      const BlockQ8_0* blk = w + b + 2 * p;
      const __m512i wv = _mm512_xor_si512(
          _mm512_inserti64x4(
              _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[0].qs))),
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[1].qs)), 1),
          flip);
      const __m512i xq = _mm512_loadu_si512(x.qs + (b + 2 * p) * kQ8BlockSize);
      dots[p] = _mm512_dpbusd_epi32(zero, wv, xq);
    }
    const __m512i q0 = foldHalves<4>(dots[0], dots[1]), q1 = foldHalves<4>(dots[2], dots[3]);
    const __m512i q2 = foldHalves<4>(dots[4], dots[5]), q3 = foldHalves<4>(dots[6], dots[7]);
    const __m512i sums = foldHalves<1>(foldHalves<2>(q0, q1), foldHalves<2>(q2, q3));
    // sum(w * x) = sum((w + 128) * x) - 128 * sum(x)
    const __m512i xsum = _mm512_loadu_si512(x.sum + b);
    const __m512 dots_f = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, _mm512_slli_epi32(xsum, 7)));
    const __m512i d_raw = _mm512_i32gather_epi32(scale_at, static_cast<const void*>(&w[b].d), 1);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d_raw));
    acc = _mm512_fmadd_ps(dots_f, _mm512_mul_ps(dw, _mm512_loadu_ps(x.d + b)), acc);
  }
  float s = _mm512_reduce_add_ps(acc);
  if (b < nb) s += dotRowQ8<kPf>(w + b, nb - b, Q8Rows{x.qs + b * kQ8BlockSize, x.d + b, x.sum + b, x.nb});
  return s;
}

// Rows one at a time or 4 at a time, as gemv() above.
void gemvQ8(const BlockQ8_0* w, int64_t nb, int64_t r0, int64_t r1, const Q8Rows& x, int64_t m,
            float* y, int64_t ldy) {
  if (m == 1) {
    withWeightPrefetch([&](auto pf) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dotRowQ8Wide<pf.value>(w + r * nb, nb, x);
    });
    return;
  }
  int64_t r = r0;
  if (m > kStreamRows) {
    for (; r + 4 <= r1; r += 4) q8RowBlock<4>(w + r * nb, nb, x, m, y + r, ldy);
  }
  for (; r < r1; ++r) q8RowBlock<1>(w + r * nb, nb, x, m, y + r, ldy);
}

// ---- conversions ----------------------------------------------------------------------------
template <class L>
void toF32(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, L::load(src + i));
  if (i < n) {
    __mmask16 mask = tailMask(n - i);
    _mm512_mask_storeu_ps(dst + i, mask, L::loadMask(src + i, mask));
  }
}
void f16ToF32(const uint16_t* src, int64_t n, float* dst) { toF32<LoadF16>(src, n, dst); }
void bf16ToF32(const uint16_t* src, int64_t n, float* dst) { toF32<LoadBF16>(src, n, dst); }

void q8ToF32(const BlockQ8_0* src, int64_t nb, float* dst) {
  for (int64_t b = 0; b < nb; ++b) {
    __m512 d = _mm512_set1_ps(_cvtsh_ss(src[b].d));
    for (int h = 0; h < 2; ++h) {
      __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[b].qs + 16 * h));
      __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
      _mm512_storeu_ps(dst + b * kQ8BlockSize + 16 * h, _mm512_mul_ps(v, d));
    }
  }
}

// ---- element-wise -----------------------------------------------------------------------------
// exp(x) for x in any range: clamped to [-87.3, 88.7], n = round(x / ln2), r = x - n ln2,
// degree-6 polynomial on |r| <= ln2/2 (relative error ~2e-7), scaled by 2^n.
__m512 expPs(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

float dot(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i),
                           acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void axpy(float a, const float* x, float* y, int64_t n) {
  __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    __m512 yv = _mm512_maskz_loadu_ps(mask, y + i);
    _mm512_mask_storeu_ps(y + i, mask, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(mask, x + i), yv));
  }
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    __m512 s =
        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, y + i), _mm512_maskz_loadu_ps(mask, x + i));
    _mm512_mask_storeu_ps(y + i, mask, s);
  }
}

void rmsnormRow(const float* x, const float* w, float eps, int64_t d, float* y) {
  float ss = dot(x, x, d);
  float scale = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  __m512 sv = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < d; i += 16) {
    __mmask16 mask = tailMask(minI64(16, d - i));
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + i), sv);
    _mm512_mask_storeu_ps(y + i, mask, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, w + i)));
  }
}

void siluMul(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
    __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, expPs(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(gate + i, mask, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mask, up + i)));
  }
}

// Normalised in place; the max of x and the sum of exp(x - max) returned (decode attention
// merges spans with them).
void softmaxStats(float* x, int64_t n, float* max_out, float* sum_out) {
  if (n <= 0) return;
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    mx = _mm512_mask_max_ps(mx, mask, mx, _mm512_maskz_loadu_ps(mask, x + i));
  }
  const float m = _mm512_reduce_max_ps(mx);
  __m512 mv = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    __m512 e = expPs(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), mv));
    sum = _mm512_mask_add_ps(sum, mask, sum, e);
    _mm512_mask_storeu_ps(x + i, mask, e);
  }
  const float total = _mm512_reduce_add_ps(sum);
  __m512 inv = _mm512_set1_ps(1.0f / total);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mask = tailMask(minI64(16, n - i));
    _mm512_mask_storeu_ps(x + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + i), inv));
  }
  *max_out = m;
  *sum_out = total;
}

void softmax(float* x, int64_t n) {
  float m, total;
  softmaxStats(x, n, &m, &total);
}

// ---- decode attention (one token's query heads against one kv head's cached K/V) ----------

// The K/V rows are f32, f16 or bf16 (L: LoadF32, LoadF16, LoadBF16), widened to f32 as loaded.

// s[h * ctx + t] = scale * q_h . k_t for the H query heads q_h = q + h * hd and the n rows of
// one block (k rows contiguous, hd % 16 == 0): four positions at a time, each K vector loaded
// once for the H heads, each head's four partial sums reduced together.
template <class L, int H>
void blockScores(const float* q, const typename L::T* k, int64_t n, int64_t hd, float scale,
                 float* s, int64_t ctx) {
  const __m128 sc = _mm_set1_ps(scale);
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    __m512 a[H][4];
    KUNROLL for (int h = 0; h < H; ++h) {
      KUNROLL for (int r = 0; r < 4; ++r) a[h][r] = _mm512_setzero_ps();
    }
    const typename L::T* k0 = k + t * hd;
    for (int64_t c = 0; c < hd; c += 16) {
      __m512 kv[4];
      KUNROLL for (int r = 0; r < 4; ++r) kv[r] = L::load(k0 + r * hd + c);
      KUNROLL for (int h = 0; h < H; ++h) {
        const __m512 qv = _mm512_loadu_ps(q + h * hd + c);
        KUNROLL for (int r = 0; r < 4; ++r) a[h][r] = _mm512_fmadd_ps(qv, kv[r], a[h][r]);
      }
    }
    KUNROLL for (int h = 0; h < H; ++h) {
      _mm_storeu_ps(s + h * ctx + t, _mm_mul_ps(reduce4(a[h][0], a[h][1], a[h][2], a[h][3]), sc));
    }
  }
  for (; t < n; ++t) {
    KUNROLL for (int h = 0; h < H; ++h) {
      __m512 a = _mm512_setzero_ps();
      for (int64_t c = 0; c < hd; c += 16) {
        a = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * hd + c), L::load(k + t * hd + c), a);
      }
      s[h * ctx + t] = scale * _mm512_reduce_add_ps(a);
    }
  }
}

// out_h += sum_{t < n} p_h[t] v_t over one block's n rows of V for H heads (p_h = p + h * ps,
// out_h = out + h * NV * 16), the NV = hd / 16 accumulators of each head in registers; each V
// vector loaded once for all H.
template <class L, int NV, int H>
void blockValues(const float* p, int64_t ps, const typename L::T* v, int64_t n, float* out) {
  __m512 o[H][NV];
  KUNROLL for (int h = 0; h < H; ++h) {
    KUNROLL for (int c = 0; c < NV; ++c) o[h][c] = _mm512_loadu_ps(out + (h * NV + c) * 16);
  }
  for (int64_t t = 0; t < n; ++t) {
    __m512 vv[NV];
    KUNROLL for (int c = 0; c < NV; ++c) vv[c] = L::load(v + t * NV * 16 + c * 16);
    KUNROLL for (int h = 0; h < H; ++h) {
      const __m512 pt = _mm512_set1_ps(p[h * ps + t]);
      KUNROLL for (int c = 0; c < NV; ++c) o[h][c] = _mm512_fmadd_ps(pt, vv[c], o[h][c]);
    }
  }
  KUNROLL for (int h = 0; h < H; ++h) {
    KUNROLL for (int c = 0; c < NV; ++c) _mm512_storeu_ps(out + (h * NV + c) * 16, o[h][c]);
  }
}

// The same for one head and any hd % 16 == 0, accumulating in `out` (L1-resident).
template <class L>
void blockValuesAny(const float* p, const typename L::T* v, int64_t n, int64_t hd, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const __m512 pt = _mm512_set1_ps(p[t]);
    for (int64_t c = 0; c < hd; c += 16) {
      _mm512_storeu_ps(out + c, _mm512_fmadd_ps(pt, L::load(v + t * hd + c), _mm512_loadu_ps(out + c)));
    }
  }
}

// The vector pieces of attend::span (attend_decode.h).
struct AttendOps {
  static constexpr int kMaxHeads = 4;
  static bool fourHeads(int64_t hd) { return hd <= 64; }  // 16 score accumulators, 4 K rows
  static void softmax(float* x, int64_t n, float* max, float* sum) { softmaxStats(x, n, max, sum); }
  template <class L, int H>
  static void scores(const float* q, const typename L::T* k, int64_t n, int64_t hd, float scale,
                     float* s, int64_t ctx) {
    blockScores<L, H>(q, k, n, hd, scale, s, ctx);
  }
  template <class L, int H>
  static void valuesAdd(const float* p, int64_t ps, const typename L::T* v, int64_t n, int64_t hd,
                        float* out) {
    if (hd == 64) {
      blockValues<L, 4, H>(p, ps, v, n, out);
    } else if (hd == 128 && H <= 2) {
      blockValues<L, 8, H>(p, ps, v, n, out);
    } else {
      for (int h = 0; h < H; ++h) blockValuesAny<L>(p + h * ps, v, n, hd, out + h * hd);
    }
  }
};

}  // namespace
}  // namespace turbine::engine::cpu::internal

#pragma GCC pop_options
#undef KUNROLL

namespace turbine::engine::cpu::internal {

const KernelTable& avx512Kernels() {
  static const KernelTable table = {
      .name = "avx512",
      .gemv_f32 = gemvF32,
      .gemv_f16 = gemvF16,
      .gemv_bf16 = gemvBf16,
      .gemv_q8 = gemvQ8,
      .f16_to_f32 = f16ToF32,
      .bf16_to_f32 = bf16ToF32,
      .q8_to_f32 = q8ToF32,
      .gemm_bf16 = nullptr,
      .gemv_bf16_dp = nullptr,
      .f32_to_bf16 = nullptr,
      .gemm_f32 = gemmF32Avx512,
      .dot = dot,
      .axpy = axpy,
      .rmsnorm_row = rmsnormRow,
      .silu_mul = siluMul,
      .softmax = softmax,
      .add = add,
      .attend_decode_f32 = attend::span<AttendOps, LoadF32>,
      .attend_decode_f16 = attend::span<AttendOps, LoadF16>,
      .attend_decode_bf16 = attend::span<AttendOps, LoadBF16>,
  };
  return table;
}

const KernelTable& avx512Bf16Kernels() {
  static const KernelTable table = [] {
    KernelTable t = avx512Kernels();
    t.name = "avx512bf16";
    t.gemm_bf16 = gemmBf16Avx512;
    t.gemv_bf16_dp = gemvBf16DpAvx512;
    t.f32_to_bf16 = f32ToBf16Avx512;
    return t;
  }();
  return table;
}

}  // namespace turbine::engine::cpu::internal
