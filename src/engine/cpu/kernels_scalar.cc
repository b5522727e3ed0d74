// Portable scalar kernels: the fallback for CPUs without AVX2, and the reference the SIMD
// tables are tested against (besides the float64 references of the tests).
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "engine/cpu/kernels_internal.h"

namespace turbine::engine::cpu::internal {
namespace {

using model::BlockQ8_0;
using model::kQ8BlockSize;

template <typename Load>
void gemvGeneric(Load load, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m, float* y,
                 int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < m; ++j) {
      const float* xj = x + j * k;
      float acc[4] = {0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 4 <= k; i += 4) {
        for (int u = 0; u < 4; ++u) acc[u] += load(r * k + i + u) * xj[i + u];
      }
      for (; i < k; ++i) acc[0] += load(r * k + i) * xj[i];
      y[j * ldy + r] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
  }
}

void gemvF32(const float* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m, float* y,
             int64_t ldy) {
  gemvGeneric([w](int64_t i) { return w[i]; }, k, r0, r1, x, m, y, ldy);
}

void gemvF16(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m,
             float* y, int64_t ldy) {
  gemvGeneric([w](int64_t i) { return f16ToFloat(w[i]); }, k, r0, r1, x, m, y, ldy);
}

void gemvBf16(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, const float* x, int64_t m,
              float* y, int64_t ldy) {
  gemvGeneric([w](int64_t i) { return bf16ToFloat(w[i]); }, k, r0, r1, x, m, y, ldy);
}

void gemvQ8(const BlockQ8_0* w, int64_t nb, int64_t r0, int64_t r1, const Q8Rows& x, int64_t m,
            float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ8_0* wr = w + r * nb;
    for (int64_t j = 0; j < m; ++j) {
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* xq = x.qs + (j * nb + b) * kQ8BlockSize;
        int32_t s = 0;
        for (int i = 0; i < kQ8BlockSize; ++i) s += int32_t{wr[b].qs[i]} * xq[i];
        acc += static_cast<float>(s) * f16ToFloat(wr[b].d) * x.d[j * nb + b];
      }
      y[j * ldy + r] = acc;
    }
  }
}

void f16ToF32(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16ToFloat(src[i]);
}

void bf16ToF32(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16ToFloat(src[i]);
}

void q8ToF32(const BlockQ8_0* src, int64_t nb, float* dst) {
  for (int64_t b = 0; b < nb; ++b) {
    float d = f16ToFloat(src[b].d);
    for (int i = 0; i < kQ8BlockSize; ++i) dst[b * kQ8BlockSize + i] = d * src[b].qs[i];
  }
}

float dot(const float* a, const float* b, int64_t n) {
  float acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int u = 0; u < 4; ++u) acc[u] += a[i + u] * b[i + u];
  }
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void rmsnormRow(const float* x, const float* w, float eps, int64_t d, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[i]) * x[i];
  float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
  for (int64_t i = 0; i < d; ++i) y[i] = x[i] * scale * w[i];
}

void siluMul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace

const KernelTable& scalarKernels() {
  static const KernelTable table = {
      .name = "scalar",
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
  };
  return table;
}

}  // namespace turbine::engine::cpu::internal
