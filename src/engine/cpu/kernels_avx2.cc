// AVX2 + FMA + F16C kernels, for x86-64 CPUs without AVX-512 (Haswell .. Alder Lake, Zen 1-3).
// Same structure as kernels_avx512.cc with 8-wide vectors and 16 registers; tails are scalar.
// Everything below the target pragma has internal linkage (see kernels_avx512.cc).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/cpu/attend_decode.h"
#include "engine/cpu/kernels_internal.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Fixed-count loops over register tiles must be fully unrolled, or GCC keeps the tiles in memory.
#define KUNROLL _Pragma("GCC unroll 16")

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace turbine::engine::cpu::internal {
namespace {

using model::BlockQ8_0;
using model::kQ8BlockSize;

struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float scalar(const float* p) { return *p; }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float scalar(const uint16_t* p) { return _cvtsh_ss(*p); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static float scalar(const uint16_t* p) {
    uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <class L, int R, int J>
void gemvTile(const typename L::T* w, int64_t k, const float* x, float* y, int64_t ldy) {
  __m256 acc[R][J];
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[R];
    KUNROLL for (int r = 0; r < R; ++r) wv[r] = L::load(w + r * k + i);
    KUNROLL for (int j = 0; j < J; ++j) {
      __m256 xv = _mm256_loadu_ps(x + j * k + i);
      KUNROLL for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(wv[r], xv, acc[r][j]);
    }
  }
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) {
      float s = hsum(acc[r][j]);
      for (int64_t t = i; t < k; ++t) s += L::scalar(w + r * k + t) * x[j * k + t];
      y[j * ldy + r] = s;
    }
  }
}

template <class L, int R>
void gemvRowBlock(const typename L::T* w, int64_t k, const float* x, int64_t m, float* y,
                  int64_t ldy) {
  int64_t j = 0;
  for (; j + 2 <= m; j += 2) gemvTile<L, R, 2>(w, k, x + j * k, y + j * ldy, ldy);
  if (j < m) gemvTile<L, R, 1>(w, k, x + j * k, y + j * ldy, ldy);
}

// One weight row against one activation row, 4 independent accumulators (32 per step).
// kPf: the weights kWeightPrefetchBytes ahead requested into L2 (weightPrefetch()).
template <class L, bool kPf = false>
float dotRow(const typename L::T* w, const float* x, int64_t k) {
  constexpr int kLines = static_cast<int>(32 * sizeof(typename L::T) / 64);  // per step
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    prefetchAhead<kPf>(w + i, kLines);
    a0 = _mm256_fmadd_ps(L::load(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(L::load(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(L::load(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(L::load(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(L::load(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < k; ++i) s += L::scalar(w + i) * x[i];
  return s;
}

// m = 1: rows one at a time (one sequential weight stream per thread; see kernels_avx512.cc).
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
  if (m > 3) {  // compute-bound: 4-row register tiles (see kernels_avx512.cc)
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
  gemv<LoadF16>(w, k, r0, r1, x, m, y, ldy);
}
void gemvBf16(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m,
              float* y, int64_t ldy) {
  gemv<LoadBF16>(w, k, r0, r1, x, m, y, ldy);
}

// q8_0 x q8_0: |w| (unsigned) times x with w's sign (signed), pairwise in 16 bits, then 32.
// kPf: each row's weights kWeightPrefetchBytes ahead requested into L2 (m = 1).
template <int R, int J, bool kPf = false>
void q8Tile(const BlockQ8_0* w, int64_t nb, const Q8Rows& x, int64_t j0, float* y, int64_t ldy) {
  __m256 acc[R][J];
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i wv[R];
    __m256 dw[R];
    KUNROLL for (int r = 0; r < R; ++r) {
      if ((b & 1) == 0) prefetchAhead<kPf>(&w[r * nb + b], 2);  // 2 blocks: 68 bytes
      const BlockQ8_0& blk = w[r * nb + b];
      wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
      dw[r] = _mm256_set1_ps(_cvtsh_ss(blk.d));
    }
    KUNROLL for (int j = 0; j < J; ++j) {
      int64_t xb = (j0 + j) * nb + b;
      __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + xb * kQ8BlockSize));
      __m256 dx = _mm256_set1_ps(x.d[xb]);
      KUNROLL for (int r = 0; r < R; ++r) {
        __m256i p16 =
            _mm256_maddubs_epi16(_mm256_sign_epi8(wv[r], wv[r]), _mm256_sign_epi8(xq, wv[r]));
        __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[r][j] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw[r], dx), acc[r][j]);
      }
    }
  }
  KUNROLL for (int r = 0; r < R; ++r) {
    KUNROLL for (int j = 0; j < J; ++j) y[j * ldy + r] = hsum(acc[r][j]);
  }
}

template <int R>
void q8RowBlock(const BlockQ8_0* w, int64_t nb, const Q8Rows& x, int64_t m, float* y, int64_t ldy) {
  int64_t j = 0;
  for (; j + 2 <= m; j += 2) q8Tile<R, 2>(w, nb, x, j, y + j * ldy, ldy);
  if (j < m) q8Tile<R, 1>(w, nb, x, j, y + j * ldy, ldy);
}

void gemvQ8(const BlockQ8_0* w, int64_t nb, int64_t r0, int64_t r1, const Q8Rows& x, int64_t m,
            float* y, int64_t ldy) {
  if (m == 1) {
    withWeightPrefetch([&](auto pf) {
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) q8Tile<4, 1, pf.value>(w + r * nb, nb, x, 0, y + r, ldy);
      for (; r < r1; ++r) q8Tile<1, 1, pf.value>(w + r * nb, nb, x, 0, y + r, ldy);
    });
    return;
  }
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) q8RowBlock<4>(w + r * nb, nb, x, m, y + r, ldy);
  for (; r < r1; ++r) q8RowBlock<1>(w + r * nb, nb, x, m, y + r, ldy);
}

template <class L>
void toF32(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, L::load(src + i));
  for (; i < n; ++i) dst[i] = L::scalar(src + i);
}
void f16ToF32(const uint16_t* src, int64_t n, float* dst) { toF32<LoadF16>(src, n, dst); }
void bf16ToF32(const uint16_t* src, int64_t n, float* dst) { toF32<LoadBF16>(src, n, dst); }

void q8ToF32(const BlockQ8_0* src, int64_t nb, float* dst) {
  for (int64_t b = 0; b < nb; ++b) {
    __m256 d = _mm256_set1_ps(_cvtsh_ss(src[b].d));
    for (int h = 0; h < 4; ++h) {
      __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src[b].qs + 8 * h));
      __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
      _mm256_storeu_ps(dst + b * kQ8BlockSize + 8 * h, _mm256_mul_ps(v, d));
    }
  }
}

// exp as in kernels_avx512.cc; 2^n built in the exponent field (n in [-126, 128] after the clamp).
__m256 expPs(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // 2^n as two factors so that n = 128 (x near 88.7) does not overflow the exponent field.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i half = _mm256_srai_epi32(ni, 1);
  __m256 s1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8)
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

void add(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  }
  for (; i < n; ++i) y[i] += x[i];
}

void rmsnormRow(const float* x, const float* w, float eps, int64_t d, float* y) {
  float scale = 1.0f / std::sqrt(dot(x, x, d) / static_cast<float>(d) + eps);
  __m256 sv = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sv);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v, _mm256_loadu_ps(w + i)));
  }
  for (; i < d; ++i) y[i] = x[i] * scale * w[i];
}

void siluMul(float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(gate + i);
    __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, expPs(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Normalised in place; the max of x and the sum of exp(x - max) returned (decode attention
// merges spans with them).
void softmaxStats(float* x, int64_t n, float* max_out, float* sum_out) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  __m256 mv = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = expPs(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    sum = _mm256_add_ps(sum, e);
    _mm256_storeu_ps(x + i, e);
  }
  float total = hsum(sum);
  for (; i < n; ++i) total += (x[i] = std::exp(x[i] - mx));
  __m256 inv = _mm256_set1_ps(1.0f / total);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= 1.0f / total;
  *max_out = mx;
  *sum_out = total;
}

void softmax(float* x, int64_t n) {
  float mx, total;
  softmaxStats(x, n, &mx, &total);
}

// ---- decode attention: the vector pieces of attend::span (attend_decode.h), 8 wide --------

inline int64_t minI64(int64_t a, int64_t b) { return a < b ? a : b; }

// The four sums of a0..a3 in one vector.
inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// s[h * ctx + t] = scale * q_h . k_t for H heads (q_h = q + h * hd) and the n rows of one block
// (hd % 16 == 0): four positions at a time, each K vector loaded once for the H heads.
template <class L, int H>
void blockScores(const float* q, const typename L::T* k, int64_t n, int64_t hd, float scale,
                 float* s, int64_t ctx) {
  const __m128 sc = _mm_set1_ps(scale);
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    __m256 a[H][4];
    KUNROLL for (int h = 0; h < H; ++h) {
      KUNROLL for (int r = 0; r < 4; ++r) a[h][r] = _mm256_setzero_ps();
    }
    const typename L::T* k0 = k + t * hd;
    for (int64_t c = 0; c < hd; c += 8) {
      __m256 kv[4];
      KUNROLL for (int r = 0; r < 4; ++r) kv[r] = L::load(k0 + r * hd + c);
      KUNROLL for (int h = 0; h < H; ++h) {
        const __m256 qv = _mm256_loadu_ps(q + h * hd + c);
        KUNROLL for (int r = 0; r < 4; ++r) a[h][r] = _mm256_fmadd_ps(qv, kv[r], a[h][r]);
      }
    }
    KUNROLL for (int h = 0; h < H; ++h) {
      _mm_storeu_ps(s + h * ctx + t, _mm_mul_ps(reduce4(a[h][0], a[h][1], a[h][2], a[h][3]), sc));
    }
  }
  for (; t < n; ++t) {
    KUNROLL for (int h = 0; h < H; ++h) {
      __m256 a = _mm256_setzero_ps();
      for (int64_t c = 0; c < hd; c += 8) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * hd + c), L::load(k + t * hd + c), a);
      }
      s[h * ctx + t] = scale * hsum(a);
    }
  }
}

// out += sum_{t < n} p[t] v_t over one block's n rows of V for hd = 64: eight accumulators in
// registers.
template <class L>
void blockValues64(const float* p, const typename L::T* v, int64_t n, float* out) {
  __m256 o[8];
  KUNROLL for (int c = 0; c < 8; ++c) o[c] = _mm256_loadu_ps(out + c * 8);
  for (int64_t t = 0; t < n; ++t) {
    const __m256 pt = _mm256_set1_ps(p[t]);
    KUNROLL for (int c = 0; c < 8; ++c) o[c] = _mm256_fmadd_ps(pt, L::load(v + t * 64 + c * 8), o[c]);
  }
  KUNROLL for (int c = 0; c < 8; ++c) _mm256_storeu_ps(out + c * 8, o[c]);
}

// The same for any hd % 8 == 0, accumulating in `out` (L1-resident).
template <class L>
void blockValuesAny(const float* p, const typename L::T* v, int64_t n, int64_t hd, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const __m256 pt = _mm256_set1_ps(p[t]);
    for (int64_t c = 0; c < hd; c += 8) {
      _mm256_storeu_ps(out + c, _mm256_fmadd_ps(pt, L::load(v + t * hd + c), _mm256_loadu_ps(out + c)));
    }
  }
}

// The vector pieces of attend::span (attend_decode.h): 16 registers hold the scores of two
// heads at most (8 accumulators, 4 K rows).
struct AttendOps {
  static constexpr int kMaxHeads = 2;
  static bool fourHeads(int64_t) { return false; }
  static void softmax(float* x, int64_t n, float* max, float* sum) { softmaxStats(x, n, max, sum); }
  template <class L, int H>
  static void scores(const float* q, const typename L::T* k, int64_t n, int64_t hd, float scale,
                     float* s, int64_t ctx) {
    blockScores<L, H>(q, k, n, hd, scale, s, ctx);
  }
  template <class L, int H>
  static void valuesAdd(const float* p, int64_t ps, const typename L::T* v, int64_t n, int64_t hd,
                        float* out) {
    for (int h = 0; h < H; ++h) {
      if (hd == 64) {
        blockValues64<L>(p + h * ps, v, n, out + h * hd);
      } else {
        blockValuesAny<L>(p + h * ps, v, n, hd, out + h * hd);
      }
    }
  }
};

}  // namespace
}  // namespace turbine::engine::cpu::internal

#pragma GCC pop_options
#undef KUNROLL

namespace turbine::engine::cpu::internal {

const KernelTable& avx2Kernels() {
  static const KernelTable table = {
      .name = "avx2",
      .gemv_f32 = gemvF32,
      .gemv_f16 = gemvF16,
      .gemv_bf16 = gemvBf16,
      .gemv_q8 = gemvQ8,
      .f16_to_f32 = f16ToF32,
      .bf16_to_f32 = bf16ToF32,
      .q8_to_f32 = q8ToF32,
      .gemm_bf16 = nullptr,
      .f32_to_bf16 = nullptr,
      .gemm_f32 = nullptr,
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

}  // namespace turbine::engine::cpu::internal
