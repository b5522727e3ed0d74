// Internal to the CPU kernels: the per-ISA kernel tables that kernels.cc dispatches to.
// Each table's entries compute the same function; they differ only in speed and in the last
// bits of rounding (summation order). None of them allocates or spawns threads.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/prefetch.h"

#include "model/weights.h"

namespace turbine::engine::cpu::internal {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };

// Software prefetch of the weights ahead of batch-1 (m = 1) dot products: each step of a row's
// loop asks for the lines kWeightPrefetchBytes ahead (into L2) of what it reads. On Intel
// server cores (an Emerald Rapids guest) one core's stream of demand loads falls well short of
// what the memory gives it, and this took a bf16 row-dot stream over 512 MiB from 21-22 to
// 28-29 GB/s (2 threads, docs/benchmarks.md "Session 12"); on AMD Zen 4/5 the hardware
// prefetchers already keep up and software prefetch measured 0.62-0.98x (session 3), so it is
// on for GenuineIntel only. TURBINE_WEIGHT_PREFETCH=0|1 overrides the choice.
inline constexpr int64_t kWeightPrefetchBytes = 4096;
bool weightPrefetch();

// Large-m bf16 products through the vdpbf16ps GEMM (true) or through bf16 tiles widened to f32
// and the f32 GEMM (false). On Zen 4/5 the first is faster; on the Intel guest of session 12 the
// second (medium prefill 400-415 vs ~620 tok/s: vdpbf16ps issues on one port there, FMA on
// two), so it is false for GenuineIntel. TURBINE_BF16_GEMM=dp|f32 overrides.
bool bf16DotGemm();
// The `lines` 64-byte lines from p + kWeightPrefetchBytes on, into L2.
template <bool kOn>
inline void prefetchAhead(const void* p, int lines) {
  if constexpr (kOn) {
    const char* q = static_cast<const char*>(p) + kWeightPrefetchBytes;
    for (int l = 0; l < lines; ++l) prefetchL2(q + 64 * l);
  } else {
    (void)p, (void)lines;
  }
}

// fn(std::true_type{}) when weightPrefetch(), else fn(std::false_type{}): an m = 1 row loop
// instantiated both ways, chosen once per call.
template <class Fn>
inline void withWeightPrefetch(Fn&& fn) {
  if (weightPrefetch()) {
    fn(std::true_type{});
  } else {
    fn(std::false_type{});
  }
}

// Activation rows quantized to q8_0 blocks for the int8 dot products with q8_0 weights.
// Row j, block b: values qs[(j * nb + b) * 32 + i] * d[j * nb + b]; sum[j * nb + b] = sum of the
// block's 32 qs (the AVX kernels use it to turn unsigned x signed products into signed ones).
struct Q8Rows {
  const int8_t* qs = nullptr;
  const float* d = nullptr;
  const int32_t* sum = nullptr;
  int64_t nb = 0;  // blocks per row
};

// y[j * ldy + r] = dot(weight row r, activation row j) for r in [r0, r1), j in [0, m).
// Weight rows are contiguous with k columns (nb = k / 32 blocks for q8_0); activation rows are
// contiguous with k columns.
using GemvF32Fn = void (*)(const float* w, int64_t k, int64_t r0, int64_t r1, const float* x,
                           int64_t m, float* y, int64_t ldy);
using GemvHalfFn = void (*)(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const float* x,
                            int64_t m, float* y, int64_t ldy);
using GemvQ8Fn = void (*)(const model::BlockQ8_0* w, int64_t nb, int64_t r0, int64_t r1,
                          const Q8Rows& x, int64_t m, float* y, int64_t ldy);
using HalfToF32Fn = void (*)(const uint16_t* src, int64_t n, float* dst);
using Q8ToF32Fn = void (*)(const model::BlockQ8_0* src, int64_t nb, float* dst);

// Large-m product for bf16 weights on CPUs with a bf16 dot-product instruction:
// y[i, r] = dot(x row i, w row r) for i in [0, m), r in [r0, r1); x is given pre-converted to
// bf16 pairs (xb, [m, k] row-major, k even). May be null: kernels.cc then uses sgemm.
using GemmBf16Fn = void (*)(const uint16_t* w, int64_t k, int64_t r0, int64_t r1,
                            const uint16_t* xb, int64_t m, float* y, int64_t ldy);
// dst[i] = src[i] rounded to bf16 (nearest even), for the x of GemmBf16Fn.
using F32ToBf16Fn = void (*)(const float* src, int64_t n, uint16_t* dst);

// Large-m f32 GEMM: y[i, r] = dot(x row i, wt row r) for i < m, r < rows. wt: [rows, k] f32
// with row stride ldw (pad it: a stride of 4 KiB puts the tile's rows on one L1 set). x is
// packed (kernels.cc packXBlocks) in blocks of kXBlock rows, each [k][kXBlock], rows beyond m
// zero. y rows have stride ldy.
inline constexpr int kXBlock = 32;
using GemmF32Fn = void (*)(const float* wt, int64_t ldw, int64_t rows, int64_t k, const float* xp,
                           int64_t m, float* y, int64_t ldy);

// Decode attention of one token over a span of ctx cached positions, every kv head at once
// (cpu::attendDecode has the contract). Needs hd % 16 == 0.
using AttendDecodeFn = void (*)(const float* q, int64_t nq, int64_t n_kv, const void* const* k_blocks,
                                const void* const* v_blocks, int64_t head_stride, int64_t bs,
                                int64_t ctx, int64_t hd, float scale, float* scores, float* out,
                                float* maxes, float* sums, int64_t skip);
struct KernelTable {
  const char* name;
  GemvF32Fn gemv_f32;
  GemvHalfFn gemv_f16;
  GemvHalfFn gemv_bf16;
  GemvQ8Fn gemv_q8;
  HalfToF32Fn f16_to_f32;
  HalfToF32Fn bf16_to_f32;
  Q8ToF32Fn q8_to_f32;
  GemmBf16Fn gemm_bf16;
  // Small-m (1..kMaxGemvRows) bf16 product with vdpbf16ps, same contract as gemm_bf16 (x given
  // as bf16); may be null: kernels.cc then uses gemv_bf16 on f32 x.
  GemmBf16Fn gemv_bf16_dp = nullptr;
  F32ToBf16Fn f32_to_bf16;  // set where gemm_bf16 is
  GemmF32Fn gemm_f32;       // may be null: kernels.cc then uses OpenBLAS sgemm
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // y = x / sqrt(mean(x^2) + eps) * w over one row of d; x and y may alias.
  void (*rmsnorm_row)(const float* x, const float* w, float eps, int64_t d, float* y);
  void (*silu_mul)(float* gate, const float* up, int64_t n);
  void (*softmax)(float* x, int64_t n);
  void (*add)(float* y, const float* x, int64_t n);
  // Decode attention over f32, f16 and bf16 K/V rows. May be null: PagedAttention then gathers
  // K/V and uses sgemm.
  AttendDecodeFn attend_decode_f32 = nullptr;
  AttendDecodeFn attend_decode_f16 = nullptr;
  AttendDecodeFn attend_decode_bf16 = nullptr;
};

const KernelTable& scalarKernels();
const KernelTable& avx2Kernels();
const KernelTable& avx512Kernels();
const KernelTable& avx512Bf16Kernels();  // avx512 plus gemm_bf16

// The AVX512-BF16 GEMM (kernels_avx512_gemm.cc); only to be called where the CPU has it.
void gemmBf16Avx512(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const uint16_t* xb,
                    int64_t m, float* y, int64_t ldy);
void gemvBf16DpAvx512(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const uint16_t* xb,
                      int64_t m, float* y, int64_t ldy);
void f32ToBf16Avx512(const float* src, int64_t n, uint16_t* dst);

void gemmF32Avx512(const float* wt, int64_t ldw, int64_t rows, int64_t k, const float* xp,
                   int64_t m, float* y, int64_t ldy);

// The best level this CPU supports, and the level in use (settable downwards for tests).
Isa bestIsa();
Isa currentIsa();
void setCurrentIsa(Isa isa);
const KernelTable& currentKernels();

}  // namespace turbine::engine::cpu::internal
