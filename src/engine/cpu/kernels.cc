// The public kernels: argument plumbing, threading and the choice between the gemv-style
// kernels (every weight row is read once from memory and reused for all m rows; bf16 with
// AVX512-BF16 uses vdpbf16ps on x rounded to bf16) for m up to maxGemvRows() and the GEMM
// path above it: the AVX512-BF16 kernel for bf16 weights where the CPU has it, else the
// own AVX-512 f32 kernel on weight tiles converted to f32, else (AVX2, scalar) OpenBLAS sgemm on
// such tiles, single-threaded BLAS in each of our pool threads on disjoint weight rows.
// Threads split the weight rows (n), never k, so every output is written by one thread.
// The small-m split (ThreadPool::parallelForBalanced): each thread streams its own contiguous
// share front to back in 128 KiB grains and, once done, takes grains from the back of the
// other's share, so the region ends within a grain of both threads; the matmuls of one x (q/k/v,
// gate/up) share one region (matmulGroup). The GEMM paths split the same way in grains of their
// tiles (96-128 rows), so a core taken by another process costs a prefill its share of the
// work, not half of it; a group's GEMMs share one region too, and x is packed once for them. Measured alternatives for m = 1 (2 threads, this 2-core
// Zen 4 VM): interleaving 16-64 KiB blocks between the threads streams at 0.45-0.75x. What paid
// most: where the weights live (model_loader.cc: 2 MiB pages, ~1.3x the read rate) and whole
// 64-byte loads in the bf16/f16 m = 1 kernels (kernels_avx512.cc, ~1.4x per core).
#include "engine/cpu/kernels.h"

#include <cblas.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "common/half.h"
#include "engine/cpu/kernels_internal.h"

namespace turbine::engine::cpu {
namespace {

using internal::KernelTable;
using model::BlockQ8_0;
using model::DType;
using model::kQ8BlockSize;

// Up to this many activation rows, matmul uses the gemv kernels; above it, GEMM. Measured on
// the medium model's decode step (Zen 4, CPU time per step, bench DecodeMediumBatch): at m = 64
// the register-tiled gemv kernels beat the GEMM path for bf16 (147 vs 242 ms), f16 (276 vs
// 318 ms) and tie for f32 (336 vs 340 ms); q8_0's gemv loses there (375 vs 306 ms).
// AVX2 and scalar keep the crossover at 16 (not re-measured).
constexpr int64_t kMaxGemvRows = 64;
constexpr int64_t kMaxGemvRowsOther = 16;

int64_t maxGemvRows(const KernelTable& kt, DType dtype) {
  bool avx512 = kt.gemm_f32 != nullptr;  // the AVX-512 tables have the own f32 GEMM
  return avx512 && dtype != DType::kQ8_0 ? kMaxGemvRows : kMaxGemvRowsOther;
}
// Weight rows per work unit of the gemv kernels: 16 f32 outputs = one cache line of y.
constexpr int64_t kGemvUnitRows = 16;
// Weight bytes per grain of the gemv split (ThreadPool::parallelForBalanced): small enough that
// the end of a region leaves at most a few microseconds of one thread's stream to wait for,
// large enough that each grain is one long sequential read.
constexpr int64_t kGemvGrainBytes = 128 << 10;
// Matmuls of one x that share one parallel region at most (q, k, v).
constexpr size_t kMaxGroup = 4;
// Units per grain of the bf16 GEMM's balanced split (128 rows); the f32 paths use their tiles.
// Balanced like the gemv split, so that a core taken by another process slows a prefill by
// its share of the work, not by half of it.
constexpr int64_t kGemmGrainUnits = 8;
// Weight rows converted to f32 per sgemm call on the OpenBLAS GEMM path.
constexpr int64_t kGemmTileRows = 128;
// Weight rows converted per call of the own f32 GEMM kernel (a multiple of its 12; measured:
// smaller tiles that stay in L2 for k = 2816 were slower, x's blocks are re-read per tile).
constexpr int64_t kGemmF32TileRows = 96;

// Per-thread scratch that grows and is reused (no allocation in the steady state).
template <typename T>
T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

struct Q8Scratch {
  std::vector<int8_t> qs;
  std::vector<float> d;
  std::vector<int32_t> sum;
};

// x rounded to the nearest integer, ties to even (std::nearbyint in the default rounding mode)
// for |x| < 2^22: adding and subtracting 1.5 * 2^23 leaves no fraction bits. Unlike
// std::nearbyint on baseline x86-64 (no SSE4.1 roundss: a call per value, 15% of a q8_0 m = 1
// matmul in kernels_bench's BM_GemvInCache), it vectorizes.
// (Needs IEEE arithmetic: the build has no -ffast-math, under which this would fold to x.)
inline float roundHalfEven(float x) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (x + kMagic) - kMagic;
}

// Quantizes m rows of k (k % 32 == 0) to q8_0 blocks: d = max|x| / 127, q = round(x / d).
internal::Q8Rows quantizeRows(const float* x, int64_t m, int64_t k, Q8Scratch& s) {
  int64_t nb = k / kQ8BlockSize;
  int8_t* qs = scratch(s.qs, static_cast<size_t>(m * k));
  float* d = scratch(s.d, static_cast<size_t>(m * nb));
  int32_t* sum = scratch(s.sum, static_cast<size_t>(m * nb));
  for (int64_t b = 0; b < m * nb; ++b) {
    const float* xb = x + b * kQ8BlockSize;
    // max |x| over the bit patterns (for floats that are not NaN, |x| orders as its bits do): an
    // integer max vectorizes, a float one (a 4-cycle dependent maxss per value) does not.
    int32_t amax_bits = 0;
    for (int i = 0; i < kQ8BlockSize; ++i) {
      int32_t bits;
      std::memcpy(&bits, xb + i, sizeof bits);
      amax_bits = std::max(amax_bits, bits & 0x7fffffff);
    }
    float amax;
    std::memcpy(&amax, &amax_bits, sizeof amax);
    float scale = amax / 127.0f;
    float inv = amax > 0 ? 127.0f / amax : 0.0f;
    if (!(inv < std::numeric_limits<float>::infinity())) inv = 0;  // subnormal amax: zeros
    // Through a local int32 array: stores to qs (int8_t, which may alias the floats) kept the
    // loop scalar.
    int32_t q[kQ8BlockSize];
    for (int i = 0; i < kQ8BlockSize; ++i) q[i] = static_cast<int32_t>(roundHalfEven(xb[i] * inv));
    int32_t total = 0;
    for (int i = 0; i < kQ8BlockSize; ++i) {
      qs[b * kQ8BlockSize + i] = static_cast<int8_t>(q[i]);
      total += q[i];
    }
    d[b] = scale;
    sum[b] = total;
  }
  return internal::Q8Rows{qs, d, sum, nb};
}

void toF32(const KernelTable& kt, DType dtype, const void* src, int64_t n, float* dst) {
  switch (dtype) {
    case DType::kF32:
      std::copy_n(static_cast<const float*>(src), n, dst);
      break;
    case DType::kF16:
      kt.f16_to_f32(static_cast<const uint16_t*>(src), n, dst);
      break;
    case DType::kBF16:
      kt.bf16_to_f32(static_cast<const uint16_t*>(src), n, dst);
      break;
    case DType::kQ8_0:
      kt.q8_to_f32(static_cast<const BlockQ8_0*>(src), n / kQ8BlockSize, dst);
      break;
  }
}

// Converts rows [r0, r0 + rows) of w to f32 in dst ([rows, k]).
void rowsToF32(const KernelTable& kt, const model::TensorView& w, int64_t r0, int64_t rows,
               float* dst) {
  const int64_t k = w.cols();
  const auto* base = static_cast<const uint8_t*>(w.data) + model::dtypeBytes(w.dtype, r0 * k);
  toF32(kt, w.dtype, base, rows * k, dst);
}

// x prepared once for the gemv kernels of a group of matmuls of the same x: q8_0 blocks for
// q8_0 weights, bf16 for the bf16 dot-product kernel, both only when some weight needs it.
struct GemvInput {
  const float* x = nullptr;
  int64_t m = 0;
  internal::Q8Rows xq;
  const uint16_t* xb = nullptr;
};

// bf16 weights go through vdpbf16ps (x rounded to bf16, as llama.cpp does) where the CPU has
// AVX512-BF16, at every m: at m = 1 it is the only bf16 kernel that keeps up with the memory
// stream on Zen 5, and every batch size then rounds x the same way.
bool usesBf16Dp(const KernelTable& kt, const model::TensorView& w) {
  return w.dtype == DType::kBF16 && kt.gemv_bf16_dp != nullptr;
}

GemvInput prepareGemvInput(const KernelTable& kt, const float* x, int64_t m,
                           std::span<const MatmulOut> outs) {
  GemvInput in{x, m, {}, nullptr};
  const int64_t k = outs[0].w->cols();
  for (const MatmulOut& o : outs) {
    if (o.w->dtype == DType::kQ8_0 && in.xq.qs == nullptr) {
      static thread_local Q8Scratch q8;
      in.xq = quantizeRows(x, m, k, q8);
    }
    if (usesBf16Dp(kt, *o.w) && in.xb == nullptr) {
      // x to bf16 once per group (m * k conversions against m * n * k products).
      static thread_local std::vector<uint16_t> xb_buf;
      auto* xb = scratch(xb_buf, static_cast<size_t>(m * k));
      kt.f32_to_bf16(x, m * k, xb);
      in.xb = xb;
    }
  }
  return in;
}

// y[:, r0:r1] of one matmul through its dtype's gemv kernel.
void gemvRows(const KernelTable& kt, const GemvInput& in, const model::TensorView& w, float* y,
              int64_t r0, int64_t r1) {
  const int64_t k = w.cols();
  const int64_t n = w.rows();
  const int64_t m = in.m;
  switch (w.dtype) {
    case DType::kF32:
      kt.gemv_f32(static_cast<const float*>(w.data), k, r0, r1, in.x, m, y, n);
      break;
    case DType::kF16:
      kt.gemv_f16(static_cast<const uint16_t*>(w.data), k, r0, r1, in.x, m, y, n);
      break;
    case DType::kBF16:
      if (usesBf16Dp(kt, w)) {
        kt.gemv_bf16_dp(static_cast<const uint16_t*>(w.data), k, r0, r1, in.xb, m, y, n);
      } else {
        kt.gemv_bf16(static_cast<const uint16_t*>(w.data), k, r0, r1, in.x, m, y, n);
      }
      break;
    case DType::kQ8_0:
      kt.gemv_q8(static_cast<const BlockQ8_0*>(w.data), k / kQ8BlockSize, r0, r1, in.xq, m, y, n);
      break;
  }
}

// The gemv kernels of up to kMaxGroup matmuls of one x in one parallel region: their weight
// rows, in units of kGemvUnitRows, laid end to end and shared out by parallelForBalanced.
void gemvGroup(const KernelTable& kt, ThreadPool& pool, const float* x, int64_t m,
               std::span<const MatmulOut> outs) {
  const GemvInput in = prepareGemvInput(kt, x, m, outs);
  std::array<int64_t, kMaxGroup + 1> first{};  // first[i]: unit where matmul i starts
  for (size_t i = 0; i < outs.size(); ++i) {
    first[i + 1] = first[i] + (outs[i].w->rows() + kGemvUnitRows - 1) / kGemvUnitRows;
  }
  auto body = [&](int64_t b, int64_t e) {
    for (size_t i = 0; i < outs.size(); ++i) {
      const int64_t ub = std::max(b, first[i]), ue = std::min(e, first[i + 1]);
      if (ub >= ue) continue;
      const int64_t n = outs[i].w->rows();
      gemvRows(kt, in, *outs[i].w, outs[i].y, (ub - first[i]) * kGemvUnitRows,
               std::min(n, (ue - first[i]) * kGemvUnitRows));
    }
  };
  const auto unit_bytes =
      static_cast<int64_t>(model::dtypeBytes(outs[0].w->dtype, kGemvUnitRows * outs[0].w->cols()));
  pool.parallelForBalanced(first[outs.size()], std::max<int64_t>(1, kGemvGrainBytes / unit_bytes),
                           body);
}

void setBlasThreads(int n) {
  static int current = -1;
  if (current != n) {
    openblas_set_num_threads(n);
    current = n;
  }
}

// y[:, r0:r1] = x * w[r0:r1, :]^T with single-threaded sgemm on f32 tiles of w.
void gemmRowRange(const KernelTable& kt, const float* x, int64_t m, const model::TensorView& w,
                  int64_t r0, int64_t r1, float* y) {
  int64_t k = w.cols();
  int64_t n = w.rows();
  if (w.dtype == DType::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                static_cast<int>(r1 - r0), static_cast<int>(k), 1.0f, x, static_cast<int>(k),
                static_cast<const float*>(w.data) + r0 * k, static_cast<int>(k), 0.0f, y + r0,
                static_cast<int>(n));
    return;
  }
  static thread_local std::vector<float> tile_buf;
  float* tile = scratch(tile_buf, static_cast<size_t>(kGemmTileRows * k));
  for (int64_t t = r0; t < r1; t += kGemmTileRows) {
    int64_t rows = std::min(kGemmTileRows, r1 - t);
    rowsToF32(kt, w, t, rows, tile);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                static_cast<int>(rows), static_cast<int>(k), 1.0f, x, static_cast<int>(k), tile,
                static_cast<int>(k), 0.0f, y + t, static_cast<int>(n));
  }
}

// xp = x packed for GemmF32Fn: blocks of kXBlock rows, each [k][kXBlock], zero-padded rows.
void packXBlocks(ThreadPool& pool, const float* x, int64_t m, int64_t k, float* xp) {
  constexpr int64_t kB = internal::kXBlock;
  int64_t blocks = (m + kB - 1) / kB;
  pool.parallelFor(blocks, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* dst = xp + b * kB * k;
      int64_t rows = std::min(kB, m - b * kB);
      int64_t c = 0;
#if defined(__SSE2__)
      // 4 rows x 4 columns at a time, transposed in registers: 4 loads and 4 stores of 16 bytes
      // instead of 16 scalar ones (the scalar loop was ~10% of a prefill GEMM's time).
      for (; c + 4 <= rows; c += 4) {
        const float* s0 = x + (b * kB + c) * k;
        const float *s1 = s0 + k, *s2 = s1 + k, *s3 = s2 + k;
        int64_t kk = 0;
        for (; kk + 4 <= k; kk += 4) {
          __m128 r0 = _mm_loadu_ps(s0 + kk), r1 = _mm_loadu_ps(s1 + kk);
          __m128 r2 = _mm_loadu_ps(s2 + kk), r3 = _mm_loadu_ps(s3 + kk);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(dst + (kk + 0) * kB + c, r0);
          _mm_storeu_ps(dst + (kk + 1) * kB + c, r1);
          _mm_storeu_ps(dst + (kk + 2) * kB + c, r2);
          _mm_storeu_ps(dst + (kk + 3) * kB + c, r3);
        }
        for (; kk < k; ++kk) {
          dst[kk * kB + c] = s0[kk];
          dst[kk * kB + c + 1] = s1[kk];
          dst[kk * kB + c + 2] = s2[kk];
          dst[kk * kB + c + 3] = s3[kk];
        }
      }
#endif
      for (; c < rows; ++c) {
        const float* src = x + (b * kB + c) * k;
        for (int64_t kk = 0; kk < k; ++kk) dst[kk * kB + c] = src[kk];
      }
      for (int64_t c = rows; c < kB; ++c) {
        for (int64_t kk = 0; kk < k; ++kk) dst[kk * kB + c] = 0.0f;
      }
    }
  });
}

// The weight rows of a group of GEMMs of one x, in tiles of up to `tile_rows` rows that never
// cross from one matmul into the next, shared out by one balanced region (one tile per grain):
// the matmuls of a group meet once at the end, not once each, and the small ones (k and v) fill
// the other thread's wait at the end of the big ones.
void forEachGemmTile(ThreadPool& pool, std::span<const MatmulOut> outs, int64_t tile_rows,
                     const std::function<void(const MatmulOut&, int64_t r0, int64_t r1)>& fn) {
  std::array<int64_t, kMaxGroup + 1> first{};  // first tile of each member
  for (size_t i = 0; i < outs.size(); ++i) {
    first[i + 1] = first[i] + (outs[i].w->rows() + tile_rows - 1) / tile_rows;
  }
  pool.parallelForBalanced(first[outs.size()], 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      size_t i = 0;
      while (t >= first[i + 1]) ++i;
      const int64_t r0 = (t - first[i]) * tile_rows;
      fn(outs[i], r0, std::min(outs[i].w->rows(), r0 + tile_rows));
    }
  });
}

// Own f32 GEMM: x packed once for the group; each thread converts its weight rows to f32 a tile
// at a time.
void gemmF32Group(const KernelTable& kt, ThreadPool& pool, const float* x, int64_t m,
                  std::span<const MatmulOut> outs) {
  const int64_t k = outs[0].w->cols();
  static thread_local std::vector<float> xp_buf;
  constexpr int64_t kB = internal::kXBlock;
  float* xp = scratch(xp_buf, static_cast<size_t>((m + kB - 1) / kB * kB * k));
  packXBlocks(pool, x, m, k, xp);
  forEachGemmTile(pool, outs, kGemmF32TileRows, [&](const MatmulOut& o, int64_t r0, int64_t r1) {
    static thread_local std::vector<float> tile_buf;
    const int64_t ldw = k + 16;  // padded: see GemmF32Fn
    float* tile = scratch(tile_buf, static_cast<size_t>(kGemmF32TileRows * ldw));
    for (int64_t r = r0; r < r1; ++r) rowsToF32(kt, *o.w, r, 1, tile + (r - r0) * ldw);
    kt.gemm_f32(tile, ldw, r1 - r0, k, xp, m, o.y + r0, o.w->rows());
  });
}

// The large-m product of a group of matmuls of one x (all with k columns).
void gemmGroup(const KernelTable& kt, ThreadPool& pool, const float* x, int64_t m,
               std::span<const MatmulOut> outs) {
  const int64_t k = outs[0].w->cols();
  const bool all_bf16 = std::all_of(outs.begin(), outs.end(),
                                    [](const MatmulOut& o) { return o.w->dtype == DType::kBF16; });
  if (all_bf16 && kt.gemm_bf16 != nullptr && k % 2 == 0 && internal::bf16DotGemm()) {
    static thread_local std::vector<uint16_t> xb_buf;
    uint16_t* xb = scratch(xb_buf, static_cast<size_t>(m * k));
    pool.parallelFor(
        m, [&](int, int64_t b, int64_t e) { kt.f32_to_bf16(x + b * k, (e - b) * k, xb + b * k); });
    forEachGemmTile(pool, outs, kGemmGrainUnits * kGemvUnitRows, [&](const MatmulOut& o, int64_t r0, int64_t r1) {
      kt.gemm_bf16(static_cast<const uint16_t*>(o.w->data), k, r0, r1, xb, m, o.y, o.w->rows());
    });
    return;
  }
  if (kt.gemm_f32 != nullptr) {
    gemmF32Group(kt, pool, x, m, outs);
    return;
  }
  setBlasThreads(1);
  forEachGemmTile(pool, outs, kGemmTileRows, [&](const MatmulOut& o, int64_t r0, int64_t r1) {
    gemmRowRange(kt, x, m, *o.w, r0, r1, o.y);
  });
}

// Bias (or any 1-D weight) as f32; `buf` holds the conversion when one is needed.
const float* vectorF32(const model::TensorView& v, std::vector<float>& buf) {
  if (v.dtype == DType::kF32) return static_cast<const float*>(v.data);
  int64_t n = v.numel();
  float* out = scratch(buf, static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (v.dtype) {
      case DType::kF16:
        out[i] = f16ToFloat(static_cast<const uint16_t*>(v.data)[i]);
        break;
      case DType::kBF16:
        out[i] = bf16ToFloat(static_cast<const uint16_t*>(v.data)[i]);
        break;
      case DType::kQ8_0: {
        const auto* blocks = static_cast<const BlockQ8_0*>(v.data);
        const BlockQ8_0& blk = blocks[i / kQ8BlockSize];
        out[i] = f16ToFloat(blk.d) * blk.qs[i % kQ8BlockSize];
        break;
      }
      case DType::kF32:
        break;
    }
  }
  return out;
}

}  // namespace

void matmul(ThreadPool& pool, const float* x, int64_t m, const model::TensorView& w, float* y,
            const model::TensorView* bias) {
  const MatmulOut out{&w, y, bias};
  matmulGroup(pool, x, m, std::span<const MatmulOut>(&out, 1));
}

void matmulGroup(ThreadPool& pool, const float* x, int64_t m, std::span<const MatmulOut> outs) {
  const KernelTable& kt = internal::currentKernels();
  if (m <= 0 || outs.empty()) return;
  // The gemv members share one region, and so do the GEMM members.
  std::array<MatmulOut, kMaxGroup> gemv{}, gemm{};
  size_t n_gemv = 0, n_gemm = 0;
  for (const MatmulOut& o : outs) {
    if (o.w->rows() <= 0) continue;
    const bool small = m <= maxGemvRows(kt, o.w->dtype);
    if (small && n_gemv < kMaxGroup) {
      gemv[n_gemv++] = o;
    } else if (small) {
      gemvGroup(kt, pool, x, m, std::span<const MatmulOut>(&o, 1));
    } else if (n_gemm < kMaxGroup) {
      gemm[n_gemm++] = o;
    } else {
      gemmGroup(kt, pool, x, m, std::span<const MatmulOut>(&o, 1));
    }
  }
  if (n_gemv > 0) gemvGroup(kt, pool, x, m, std::span<const MatmulOut>(gemv.data(), n_gemv));
  if (n_gemm > 0) gemmGroup(kt, pool, x, m, std::span<const MatmulOut>(gemm.data(), n_gemm));
  for (const MatmulOut& o : outs) {
    if (o.bias == nullptr || !o.bias->present()) continue;
    static thread_local std::vector<float> bias_buf;
    const float* b = vectorF32(*o.bias, bias_buf);
    const int64_t n = o.w->rows();
    for (int64_t j = 0; j < m; ++j) kt.add(o.y + j * n, b, n);
  }
}

void embedRows(const model::TensorView& table, std::span<const int32_t> ids, float* out) {
  const KernelTable& kt = internal::currentKernels();
  int64_t d = table.cols();
  for (size_t i = 0; i < ids.size(); ++i) {
    rowsToF32(kt, table, ids[i], 1, out + static_cast<int64_t>(i) * d);
  }
}

void rmsnorm(const float* x, const model::TensorView& weight, float eps, int64_t m, int64_t d,
             float* y) {
  const KernelTable& kt = internal::currentKernels();
  static thread_local std::vector<float> w_buf;
  const float* w = vectorF32(weight, w_buf);
  for (int64_t i = 0; i < m; ++i) kt.rmsnorm_row(x + i * d, w, eps, d, y + i * d);
}

void siluMul(float* gate, const float* up, int64_t n) {
  internal::currentKernels().silu_mul(gate, up, n);
}

void softmax(float* x, int64_t n) { internal::currentKernels().softmax(x, n); }

float dotF32(const float* a, const float* b, int64_t n) {
  return internal::currentKernels().dot(a, b, n);
}

namespace {

internal::AttendDecodeFn attendDecodeFn(const KernelTable& kt, DType kv) {
  switch (kv) {
    case DType::kF32:
      return kt.attend_decode_f32;
    case DType::kF16:
      return kt.attend_decode_f16;
    case DType::kBF16:
      return kt.attend_decode_bf16;
    case DType::kQ8_0:
      break;
  }
  return nullptr;
}

}  // namespace

bool canAttendDecode(int64_t hd, DType kv) {
  return attendDecodeFn(internal::currentKernels(), kv) != nullptr && hd > 0 && hd % 16 == 0;
}

void attendDecode(DType kv, const float* q, int64_t nq, int64_t n_kv, const void* const* k_blocks,
                  const void* const* v_blocks, int64_t head_stride, int64_t bs, int64_t ctx,
                  int64_t hd, float scale, float* scores, float* out, float* maxes, float* sums,
                  int64_t skip) {
  attendDecodeFn(internal::currentKernels(), kv)(q, nq, n_kv, k_blocks, v_blocks, head_stride, bs,
                                                 ctx, hd, scale, scores, out, maxes, sums, skip);
}

void mergeAttentionSpans(const float* parts, const float* maxes, const float* sums,
                         int64_t n_spans, int64_t nq, int64_t hd, float* out) {
  for (int64_t j = 0; j < nq; ++j) {
    float top = -INFINITY;
    for (int64_t s = 0; s < n_spans; ++s) top = std::max(top, maxes[s * nq + j]);
    float total = 0.0f;
    float* o = out + j * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t s = 0; s < n_spans; ++s) {
      const float w = sums[s * nq + j] * std::exp(maxes[s * nq + j] - top);
      total += w;
      const float* part = parts + (s * nq + j) * hd;
      for (int64_t c = 0; c < hd; ++c) o[c] += w * part[c];
    }
    const float inv = 1.0f / total;
    for (int64_t c = 0; c < hd; ++c) o[c] *= inv;
  }
}

void toF32(DType dtype, const void* src, int64_t n, float* dst) {
  toF32(internal::currentKernels(), dtype, src, n, dst);
}

void axpyF32(float a, const float* x, float* y, int64_t n) {
  internal::currentKernels().axpy(a, x, y, n);
}

void addF32(float* y, const float* x, int64_t n) { internal::currentKernels().add(y, x, n); }

}  // namespace turbine::engine::cpu
