// Every kernel at every instruction-set level this CPU has, against a naive float64 reference
// on fresh random inputs: relative error ||out - ref|| / ||ref|| under a bound per precision,
// and every output finite. The seed of each case is printed on failure.
#include "engine/cpu/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"

namespace turbine::engine::cpu {
namespace {

using model::BlockQ8_0;
using model::DType;
using model::TensorView;

std::vector<std::string> availableIsas() {
  std::vector<std::string> out;
  for (const char* isa : {"scalar", "avx2", "avx512", "avx512bf16"}) {
    if (setKernelIsa(isa)) out.emplace_back(isa);
  }
  setKernelIsa("auto");
  return out;
}

// A weight tensor in some dtype plus the exact values it stores, as doubles.
struct Weight {
  TensorView view;
  std::vector<uint8_t> bytes;
  std::vector<double> values;  // [rows, cols]
};

Weight makeWeight(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng, float scale = 1) {
  std::normal_distribution<float> dist(0.0f, scale);
  Weight w;
  int64_t n = rows * cols;
  w.values.resize(static_cast<size_t>(n));
  w.bytes.resize(model::dtypeBytes(dtype, n));
  if (dtype == DType::kQ8_0) {
    auto* blocks = reinterpret_cast<BlockQ8_0*>(w.bytes.data());
    for (int64_t b = 0; b < n / model::kQ8BlockSize; ++b) {
      float d = f16ToFloat(floatToF16(std::abs(dist(rng)) / 100.0f + 1e-3f));
      blocks[b].d = floatToF16(d);
      for (int i = 0; i < model::kQ8BlockSize; ++i) {
        int q = static_cast<int>(rng() % 255) - 127;
        blocks[b].qs[i] = static_cast<int8_t>(q);
        w.values[static_cast<size_t>(b * model::kQ8BlockSize + i)] = static_cast<double>(d) * q;
      }
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      float v = dist(rng);
      auto idx = static_cast<size_t>(i);
      if (dtype == DType::kF32) {
        reinterpret_cast<float*>(w.bytes.data())[idx] = v;
        w.values[idx] = v;
      } else if (dtype == DType::kF16) {
        uint16_t h = floatToF16(v);
        reinterpret_cast<uint16_t*>(w.bytes.data())[idx] = h;
        w.values[idx] = f16ToFloat(h);
      } else {
        uint16_t h = floatToBf16(v);
        reinterpret_cast<uint16_t*>(w.bytes.data())[idx] = h;
        w.values[idx] = bf16ToFloat(h);
      }
    }
  }
  w.view.name = "test.weight";
  w.view.dtype = dtype;
  w.view.shape = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

std::vector<float> randomVector(int64_t n, std::mt19937& rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// ||out - ref|| / ||ref||; fails the test on a non-finite output.
double relError(const std::vector<float>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_TRUE(std::isfinite(out[i])) << "index " << i;
    if (!std::isfinite(out[i])) return INFINITY;
    double diff = out[i] - ref[i];
    num += diff * diff;
    den += ref[i] * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

double matmulBound(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 1e-5;
    case DType::kF16:
      return 1e-5;
    case DType::kBF16:
      return 8e-3;  // the AVX512-BF16 paths (every m) round x to bf16
    case DType::kQ8_0:
      return 1e-2;  // x is quantized to q8_0 on the small-m path
  }
  return 0;
}

uint32_t freshSeed() { return std::random_device{}(); }

class MatmulTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(setKernelIsa(GetParam().c_str())); }
  void TearDown() override { setKernelIsa("auto"); }

  void check(ThreadPool& pool, DType dtype, int64_t m, int64_t n, int64_t k, bool with_bias) {
    uint32_t seed = freshSeed();
    SCOPED_TRACE(testing::Message()
                 << "isa=" << GetParam() << " dtype=" << model::dtypeName(dtype) << " m=" << m
                 << " n=" << n << " k=" << k << " bias=" << with_bias << " seed=" << seed);
    std::mt19937 rng(seed);
    Weight w = makeWeight(dtype, n, k, rng);
    Weight bias = makeWeight(DType::kBF16, 1, n, rng);
    std::vector<float> x = randomVector(m * k, rng);
    std::vector<float> y(static_cast<size_t>(m * n), NAN);
    matmul(pool, x.data(), m, w.view, y.data(), with_bias ? &bias.view : nullptr);
    std::vector<double> ref(static_cast<size_t>(m * n));
    for (int64_t j = 0; j < m; ++j) {
      for (int64_t r = 0; r < n; ++r) {
        double acc = with_bias ? bias.values[static_cast<size_t>(r)] : 0.0;
        for (int64_t i = 0; i < k; ++i) {
          acc += static_cast<double>(x[static_cast<size_t>(j * k + i)]) *
                 w.values[static_cast<size_t>(r * k + i)];
        }
        ref[static_cast<size_t>(j * n + r)] = acc;
      }
    }
    EXPECT_LT(relError(y, ref), matmulBound(dtype));
  }
};

TEST_P(MatmulTest, AllDtypesAndShapes) {
  ThreadPool pool(2);
  struct Shape {
    int64_t n, k;
  };
  // k not a multiple of 16 or 32 where the dtype allows it; q8_0 needs k % 32 == 0.
  const Shape dense[] = {{5, 7}, {37, 100}, {130, 257}, {64, 1000}};
  // q8_0's error is statistical (x is quantized): enough outputs keep it from flaking.
  const Shape q8[] = {{33, 32}, {37, 96}, {130, 320}, {64, 1024}};
  for (int64_t m : {1, 2, 3, 7, 16, 33, 100, 103}) {  // 103: a last x block of 7 rows
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
      for (int s = 0; s < 4; ++s) {
        Shape sh = dtype == DType::kQ8_0 ? q8[s] : dense[s];
        check(pool, dtype, m, sh.n, sh.k, s == 1);
      }
    }
  }
}

// q8_0 quantizes the activations block by block (32 values, scale max|x| / 127): a block of
// zeros, one of subnormals (127 / max|x| overflows to inf) and one of huge values must come out
// as the float64 product of the values given, and finite.
TEST_P(MatmulTest, Q8ActivationBlocksAtTheEdges) {
  ThreadPool pool(2);
  const int64_t n = 64, k = 26 * 32;
  std::mt19937 rng(freshSeed());
  Weight w = makeWeight(DType::kQ8_0, n, k, rng);
  std::vector<float> x = randomVector(k, rng);
  for (int i = 0; i < 32; ++i) {
    x[static_cast<size_t>(i)] = 0.0f;                                   // block 0: zeros
    x[static_cast<size_t>(32 + i)] = (i % 2 ? -1 : 1) * 1e-44f * static_cast<float>(i);  // block 1
    x[static_cast<size_t>(64 + i)] = (i % 3 ? 1 : -1) * 1e30f;          // block 2: huge
  }
  for (int i = 0; i < 32; ++i) x[static_cast<size_t>(64 + i)] *= static_cast<float>(i + 1) / 32;
  std::vector<float> y(static_cast<size_t>(n), NAN);
  for (bool prefetch : {false, true}) {
    overrideWeightPrefetch(prefetch);
    matmul(pool, x.data(), 1, w.view, y.data());
    std::vector<double> ref(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t i = 0; i < k; ++i) {
        acc += static_cast<double>(x[static_cast<size_t>(i)]) * w.values[static_cast<size_t>(r * k + i)];
      }
      ref[static_cast<size_t>(r)] = acc;
    }
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << "prefetch=" << prefetch;
    EXPECT_LT(relError(y, ref), matmulBound(DType::kQ8_0)) << "prefetch=" << prefetch;
  }
  overrideWeightPrefetch(std::nullopt);
}

// The per-vendor choices, each way on any machine: weight prefetch at m = 1 on or off, large-m
// bf16 through the vdpbf16ps GEMM or the f32 GEMM (the second needs no CPU support).
TEST_P(MatmulTest, VendorChoicesEachWay) {
  ThreadPool pool(2);
  for (bool prefetch : {false, true}) {
    for (bool dot_gemm : {false, true}) {
      overrideWeightPrefetch(prefetch);
      overrideBf16DotGemm(dot_gemm);
      SCOPED_TRACE(testing::Message() << "prefetch=" << prefetch << " bf16 dot gemm=" << dot_gemm);
      for (int64_t m : {1, 2, 100}) {
        for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
          const int64_t k = dtype == DType::kQ8_0 ? 320 : 257;
          check(pool, dtype, m, 37, k, false);
          check(pool, dtype, m, 64, dtype == DType::kQ8_0 ? 1024 : 1000, false);
        }
        check(pool, DType::kQ8_0, m, 37, 832, false);  // 26 blocks: 16 at once, then 10 one by one
      }
    }
  }
  overrideWeightPrefetch(std::nullopt);
  overrideBf16DotGemm(std::nullopt);
}

// Batched decode sizes: every register-tile remainder of the small-m kernels (tiles of 4 weight
// rows x 6 activation rows), both sides of the small-m / GEMM crossover, odd and even k.
TEST_P(MatmulTest, BatchedDecodeSizes) {
  ThreadPool pool(2);
  for (int64_t m : {4, 5, 6, 8, 11, 12, 13, 24, 31, 48, 64}) {
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      check(pool, dtype, m, 67, 129, m % 2 == 0);
      check(pool, dtype, m, 20, 1024, false);
    }
    check(pool, DType::kQ8_0, m, 67, 256, m % 2 == 0);
  }
}

// matmulGroup: members of mixed dtypes and sizes, or all bf16 (the bf16 dot-product GEMM on or
// off), one region on the gemv path and one past the GEMM crossover, whose tiles end inside a
// member (200 rows), each member against its float64 reference.
TEST_P(MatmulTest, GroupMatchesReference) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t m : {1, 2, 5, 40, 100}) {
      for (int variant : {0, 1, 2}) {
        uint32_t seed = freshSeed();
        SCOPED_TRACE(testing::Message() << "isa=" << GetParam() << " threads=" << threads
                                        << " m=" << m << " variant=" << variant << " seed=" << seed);
        std::mt19937 rng(seed);
        const int64_t k = 256;
        std::vector<DType> dtypes = {DType::kBF16, DType::kF32, DType::kQ8_0};
        if (variant > 0) {
          dtypes = {DType::kBF16, DType::kBF16, DType::kBF16};
          overrideBf16DotGemm(variant == 1);
        }
        const int64_t rows[] = {200, 33, 120};
        std::vector<Weight> ws;
        std::vector<std::vector<float>> ys;
        for (int i = 0; i < 3; ++i) {
          ws.push_back(makeWeight(dtypes[i], rows[i], k, rng));
          ys.emplace_back(static_cast<size_t>(m * rows[i]), NAN);
        }
        Weight bias = makeWeight(DType::kF32, 1, rows[1], rng);
        std::vector<float> x = randomVector(m * k, rng);
        const std::vector<MatmulOut> outs = {{&ws[0].view, ys[0].data(), nullptr},
                                             {&ws[1].view, ys[1].data(), &bias.view},
                                             {&ws[2].view, ys[2].data(), nullptr}};
        matmulGroup(pool, x.data(), m, outs);
        for (int i = 0; i < 3; ++i) {
          std::vector<double> ref(static_cast<size_t>(m * rows[i]));
          for (int64_t j = 0; j < m; ++j) {
            for (int64_t r = 0; r < rows[i]; ++r) {
              double acc = i == 1 ? bias.values[static_cast<size_t>(r)] : 0.0;
              for (int64_t c = 0; c < k; ++c) {
                acc += static_cast<double>(x[static_cast<size_t>(j * k + c)]) *
                       ws[static_cast<size_t>(i)].values[static_cast<size_t>(r * k + c)];
              }
              ref[static_cast<size_t>(j * rows[i] + r)] = acc;
            }
          }
          EXPECT_LT(relError(ys[static_cast<size_t>(i)], ref), matmulBound(dtypes[static_cast<size_t>(i)]))
              << "member " << i;
        }
        overrideBf16DotGemm(std::nullopt);
      }
    }
  }
}

TEST_P(MatmulTest, ThreadCounts) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
      check(pool, dtype, 1, 77, 64, false);
      check(pool, dtype, 5, 200, 96, true);
      check(pool, dtype, 40, 150, 128, false);
    }
  }
}

TEST_P(MatmulTest, EmbedRowsIsExact) {
  std::mt19937 rng(freshSeed());
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    Weight table = makeWeight(dtype, 50, 96, rng);
    std::vector<int32_t> ids = {3, 0, 49, 3, 17};
    std::vector<float> out(ids.size() * 96, NAN);
    embedRows(table.view, ids, out.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      for (int64_t c = 0; c < 96; ++c) {
        ASSERT_EQ(out[i * 96 + static_cast<size_t>(c)],
                  static_cast<float>(table.values[static_cast<size_t>(ids[i] * 96 + c)]))
            << model::dtypeName(dtype) << " row " << i << " col " << c;
      }
    }
  }
}

TEST_P(MatmulTest, Rmsnorm) {
  uint32_t seed = freshSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  for (DType wdtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t d : {1, 15, 64, 1000, 1027}) {
      const int64_t m = 3;
      Weight w = makeWeight(wdtype, 1, d, rng);
      std::vector<float> x = randomVector(m * d, rng, -3, 3);
      std::vector<float> y(x.size(), NAN);
      rmsnorm(x.data(), w.view, 1e-5f, m, d, y.data());
      std::vector<double> ref(x.size());
      for (int64_t i = 0; i < m; ++i) {
        double ss = 0;
        for (int64_t c = 0; c < d; ++c)
          ss += double{x[static_cast<size_t>(i * d + c)]} * x[static_cast<size_t>(i * d + c)];
        double s = 1.0 / std::sqrt(ss / static_cast<double>(d) + 1e-5);
        for (int64_t c = 0; c < d; ++c) {
          auto idx = static_cast<size_t>(i * d + c);
          ref[idx] = x[idx] * s * w.values[static_cast<size_t>(c)];
        }
      }
      EXPECT_LT(relError(y, ref), 1e-5) << "d=" << d;
      rmsnorm(x.data(), w.view, 1e-5f, m, d, x.data());  // in place
      EXPECT_LT(relError(x, ref), 1e-5) << "in place, d=" << d;
    }
  }
}

TEST_P(MatmulTest, SiluMul) {
  uint32_t seed = freshSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  for (int64_t n : {1, 13, 64, 2816, 3001}) {
    std::vector<float> gate = randomVector(n, rng, -30, 30);
    if (n > 1) gate[0] = -100.0f;  // exp overflow territory for a naive silu
    std::vector<float> up = randomVector(n, rng, -2, 2);
    std::vector<double> ref(static_cast<size_t>(n));
    for (size_t i = 0; i < ref.size(); ++i) {
      double g = gate[i];
      ref[i] = g / (1.0 + std::exp(-g)) * up[i];
    }
    siluMul(gate.data(), up.data(), n);
    EXPECT_LT(relError(gate, ref), 1e-5) << "n=" << n;
  }
}

TEST_P(MatmulTest, Softmax) {
  uint32_t seed = freshSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  for (int64_t n : {1, 2, 17, 100, 4099}) {
    for (float spread : {1.0f, 30.0f, 1000.0f}) {
      std::vector<float> x = randomVector(n, rng, -spread, spread);
      double mx = -INFINITY, sum = 0;
      for (float v : x) mx = std::max(mx, double{v});
      std::vector<double> ref(x.size());
      for (size_t i = 0; i < x.size(); ++i) sum += (ref[i] = std::exp(x[i] - mx));
      for (double& r : ref) r /= sum;
      softmax(x.data(), n);
      EXPECT_LT(relError(x, ref), 1e-5) << "n=" << n << " spread=" << spread;
    }
  }
}

TEST_P(MatmulTest, DotAxpyAdd) {
  uint32_t seed = freshSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  for (int64_t n : {0, 1, 7, 16, 64, 127, 1000}) {
    std::vector<float> a = randomVector(n, rng), b = randomVector(n, rng);
    double ref = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ref += double{a[i]} * b[i];
      norm += std::abs(double{a[i]} * b[i]);
    }
    float got = dotF32(a.data(), b.data(), n);
    ASSERT_TRUE(std::isfinite(got));
    EXPECT_LE(std::abs(got - ref), 1e-6 * (norm + 1)) << "dot n=" << n;

    // Element-wise, against the size of the terms (a sum may cancel to ~0).
    std::vector<float> y = randomVector(n, rng);
    std::vector<double> ref_axpy(y.size()), ref_add(y.size()), terms(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      ref_axpy[i] = y[i] + 0.37 * a[i];
      ref_add[i] = ref_axpy[i] + b[i];
      terms[i] = std::abs(double{y[i]}) + std::abs(0.37 * a[i]) + std::abs(double{b[i]});
    }
    axpyF32(0.37f, a.data(), y.data(), n);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_TRUE(std::isfinite(y[i]));
      ASSERT_LE(std::abs(y[i] - ref_axpy[i]), 1e-6 * terms[i]) << "axpy n=" << n << " i=" << i;
    }
    addF32(y.data(), b.data(), n);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_TRUE(std::isfinite(y[i]));
      ASSERT_LE(std::abs(y[i] - ref_add[i]), 1e-6 * terms[i]) << "add n=" << n << " i=" << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, MatmulTest, testing::ValuesIn(availableIsas()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(KernelIsaTest, SetAndReport) {
  EXPECT_FALSE(setKernelIsa("sse9"));
  ASSERT_TRUE(setKernelIsa("scalar"));
  EXPECT_STREQ(kernelIsa(), "scalar");
  ASSERT_TRUE(setKernelIsa("auto"));
  std::string best = kernelIsa();
  EXPECT_NE(best, "");
  // The best level's name is one of the documented ones.
  EXPECT_TRUE(best == "scalar" || best == "avx2" || best == "avx512" || best == "avx512bf16");
}

}  // namespace
}  // namespace turbine::engine::cpu
