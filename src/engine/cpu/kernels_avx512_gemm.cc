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
  for (int64_t i0 = 0; i0 < m; i0 += kXBlock) {
    const float* xpb = xp + i0 * k;
    int valid = static_cast<int>(m - i0 < kXBlock ? m - i0 : kXBlock);
    int64_t r = 0;
    for (; r + kMr <= rows; r += kMr) {
      f32Micro<kMr>(wt + r * ldw, ldw, k, xpb, y + i0 * ldy + r, ldy, valid);
    }
    f32MicroTail(static_cast<int>(rows - r), wt + r * ldw, ldw, k, xpb, y + i0 * ldy + r, ldy,
                 valid);
  }
}

}  // namespace turbine::engine::cpu::internal

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")

namespace turbine::engine::cpu::internal {
namespace {

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
