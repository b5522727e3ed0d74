// CPU kernels of the forward pass. Activations are f32, row-major. Weights are TensorViews of
// any supported dtype (f32, f16, bf16, q8_0), row-major [rows=out_features, cols=in_features].
// The best implementation for the CPU (AVX-512 with BF16, AVX-512, AVX2+FMA+F16C, scalar) is
// picked once at run time; the binary runs on any x86-64.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "engine/cpu/thread_pool.h"
#include "model/weights.h"

namespace turbine::engine::cpu {

// Which instruction-set level the kernels use ("avx512bf16", "avx512", "avx2", "scalar").
const char* kernelIsa();

// Forces the instruction-set level for tests and benchmarks: "avx512bf16", "avx512", "avx2",
// "scalar", or "auto"/""/nullptr for the best one. Returns false (and changes nothing) when the
// name is unknown or the CPU lacks that level. Not for use while kernels run on other threads.
bool setKernelIsa(const char* isa);

// OpenBLAS picks its kernels once, when it is loaded, from the CPU models it knows; Debian 12's
// 0.3.21 does not know newer ones (an Emerald Rapids guest: family 6 model 207) and falls back to
// its generic "Prescott" SSE3 kernels, a third of the AVX-512 ones' GEMM rate. When it did so and
// OPENBLAS_CORETYPE is unset, this re-executes the program (/proc/self/exe, same argv) with
// OPENBLAS_CORETYPE naming the newest core of the CPU's ISA that it knows (Cooperlake with
// AVX-512 BF16, SkylakeX with AVX-512, Haswell with AVX2); call it first thing in main().
// Returns when nothing needs doing or the exec failed. The BLAS core in use: blasCoreName().
void reexecForBlasCore(char** argv);
const char* blasCoreName();

// The per-vendor kernel choices (kernels_internal.h: weight prefetch at m = 1, the vdpbf16ps
// GEMM for large-m bf16), forced on or off, or back to the default (nullopt), for tests and
// benchmarks that must run both on any machine. Not for use while matmuls run.
void overrideWeightPrefetch(std::optional<bool> on);
void overrideBf16DotGemm(std::optional<bool> on);

// y[m, n] = sum_k x[m, k] * w[n, k]  (+ bias[n] when bias is present).
// x: [m, k] f32; w: [n, k]; y: [m, n] f32. Requires k == w.cols(), n == w.rows().
void matmul(ThreadPool& pool, const float* x, int64_t m, const model::TensorView& w, float* y,
            const model::TensorView* bias = nullptr);

// One product of matmulGroup: y = x w^T (+ bias).
struct MatmulOut {
  const model::TensorView* w = nullptr;
  float* y = nullptr;
  const model::TensorView* bias = nullptr;
};

// Several matmuls of the same x (e.g. the q, k and v projections), each as matmul(). They share
// one parallel region, so the threads meet once, not once per matmul: where m is small (the
// memory-bound gemv kernels) they stream the weights back to back; past the GEMM crossover x is
// packed once and the small members' tiles fill the wait at the end of the big ones.
void matmulGroup(ThreadPool& pool, const float* x, int64_t m, std::span<const MatmulOut> outs);

// out[i, :] = row ids[i] of table, converted to f32. table: [vocab, d].
void embedRows(const model::TensorView& table, std::span<const int32_t> ids, float* out);

// y[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * weight. x, y: [m, d]; may alias.
void rmsnorm(const float* x, const model::TensorView& weight, float eps, int64_t m, int64_t d,
             float* y);

// gate[i] = silu(gate[i]) * up[i] for i in [0, n).
void siluMul(float* gate, const float* up, int64_t n);

// x[i] = exp(x[i] - max(x)) / sum_j exp(x[j] - max(x)), in place over one row of n (n >= 1).
void softmax(float* x, int64_t n);

// Returns sum_i a[i] * b[i] (f32 accumulation). For attention scores.
float dotF32(const float* a, const float* b, int64_t n);

// y[i] += a * x[i]. For attention's weighted sum of values.
void axpyF32(float a, const float* x, float* y, int64_t n);

// Decode attention of one token over a span of its cached positions, read in place from the
// cache's blocks of f32, f16 or bf16 elements (`kv`), every kv head at once: nq query heads (q,
// [nq][hd] contiguous), n_kv kv heads (query head j uses kv head j / (nq / n_kv)); the span's ctx
// positions lie in blocks of bs rows, kv head g's K / V rows of block b at k_blocks[b] /
// v_blocks[b] + g * head_stride elements ([bs][hd] of `kv`). out row j (stride hd) = sum_t
// softmax_t(scale * q_j . k_t) * v_t, in f32, over t in [skip, ctx) (skip > 0: a sliding window
// starting inside the first block). maxes[j] and sums[j], unless null: that softmax's max score
// and sum of exp(score - max), to merge the spans of one context (mergeAttentionSpans). scores:
// nq * ctx floats of scratch. Only where canAttendDecode(hd, kv).
// Whether the kernels have this path (AVX-512, AVX2) for `kv` elements and hd % 16 == 0.
bool canAttendDecode(int64_t hd, model::DType kv = model::DType::kF32);
void attendDecode(model::DType kv, const float* q, int64_t nq, int64_t n_kv,
                  const void* const* k_blocks, const void* const* v_blocks, int64_t head_stride,
                  int64_t bs, int64_t ctx, int64_t hd, float scale, float* scores, float* out,
                  float* maxes = nullptr, float* sums = nullptr, int64_t skip = 0);
// The attention of rows that attendDecode computed over n_spans spans of one context: out row j
// (stride hd) = the spans' rows j (span s at parts + s * nq * hd) weighted by sums[s * nq + j] *
// exp(maxes[s * nq + j] - their max), normalised.
void mergeAttentionSpans(const float* parts, const float* maxes, const float* sums,
                         int64_t n_spans, int64_t nq, int64_t hd, float* out);

// dst[i] = src[i] as f32 for i < n; src holds f32, f16 or bf16 elements (`dtype`), or q8_0
// blocks (n a multiple of 32).
void toF32(model::DType dtype, const void* src, int64_t n, float* dst);

// y[i] += x[i] (the residual connection).
void addF32(float* y, const float* x, int64_t n);

}  // namespace turbine::engine::cpu
