// Kernel benchmarks on the `medium` preset's shapes (dim 1024, FFN 2816, vocab 32000), 2 threads
// (--threads=N to change):
//  - Gemv/<dtype>/<k>/<n>: matmul with m = 1; counter `wGB/s` = weight bytes streamed per second.
//    The weights are cycled through enough copies (>= 256 MiB) that they come from DRAM, as in
//    a real decode step.
//  - DecodeMedium/<dtype>: the 16 layers' 7 matmuls + lm_head at m = 1, i.e. a decode step
//    without attention; counters tok/s and wGB/s.
//  - DecodeMediumBatch/<dtype>/<m>: the same at m = 1, 4, 16, 64 (batched decode); tok/s = m/step.
//  - Gemm/<dtype>/<k>/<n>: matmul with m = 512 (prefill); counter GFLOP/s = 2 m n k / time.
//  - PrefillMedium/<dtype>: one layer's matmuls at m = 512, scaled to 16 layers; counter tok/s.
//  - Sgemm1024/<threads>: OpenBLAS sgemm 1024^3 (its own threads): the BLAS's peak rate.
//  - DecodeAttention/<kv>/<ctx>: one token's attention, 16 layers (PagedAttention, 8 kv heads);
//    counter kvGB/s (K/V bytes read per second).
// Weights live in 2 MiB-page memory as the model loader places them (--pages=4k: 4 KiB pages).
// Run: build/bench/kernels_bench [--benchmark_filter=...]; set the ISA with --isa=avx2 etc.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "common/mapped_file.h"
#include "engine/attention.h"
#include "engine/cpu/kernels.h"
#include "engine/kv_cache.h"

namespace turbine::engine::cpu {
namespace {

using model::DType;
using model::TensorView;

int g_threads = 2;  // --threads=N

ThreadPool& pool() {
  static ThreadPool p(g_threads);
  return p;
}

// --pages=huge (default): weights in anonymous memory advised for 2 MiB pages, as the model
// loader places them (MappedFile::anonymousCopy); --pages=4k: plain heap memory (4 KiB pages, as
// a page-cache file map).
bool g_huge_pages = true;

// One weight matrix of random values in `dtype`, in `copies` distinct copies (64-byte aligned).
struct Weights {
  std::shared_ptr<MappedFile> region;  // --pages=huge
  std::vector<uint8_t> heap;           // --pages=4k
  std::vector<TensorView> views;
  size_t bytesEach() const { return views.front().nbytes; }
};

std::vector<uint8_t> randomMatrix(DType dtype, int64_t n, int64_t k) {
  std::vector<uint8_t> proto(model::dtypeBytes(dtype, n * k));
  std::mt19937 rng(42);
  if (dtype == DType::kQ8_0) {
    auto* blocks = reinterpret_cast<model::BlockQ8_0*>(proto.data());
    for (int64_t b = 0; b < n * k / 32; ++b) {
      blocks[b].d = floatToF16(0.01f);
      for (auto& q : blocks[b].qs) q = static_cast<int8_t>(rng() % 255 - 127);
    }
  } else {
    std::normal_distribution<float> dist(0.0f, 0.05f);
    for (int64_t i = 0; i < n * k; ++i) {
      float v = dist(rng);
      if (dtype == DType::kF32) std::memcpy(proto.data() + 4 * i, &v, 4);
      uint16_t h = dtype == DType::kF16 ? floatToF16(v) : floatToBf16(v);
      if (dtype != DType::kF32) std::memcpy(proto.data() + 2 * i, &h, 2);
    }
  }
  return proto;
}

Weights makeWeights(DType dtype, int64_t n, int64_t k, size_t min_total_bytes) {
  const std::vector<uint8_t> proto = randomMatrix(dtype, n, k);
  const size_t each = proto.size();
  const size_t stride = (each + 63) / 64 * 64;
  const size_t copies = std::max<size_t>(1, (min_total_bytes + each - 1) / each);
  auto fill = [&](uint8_t* dst) {
    for (size_t c = 0; c < copies; ++c) std::memcpy(dst + c * stride, proto.data(), each);
    return Status::ok();
  };
  Weights w;
  const uint8_t* base = nullptr;
  if (g_huge_pages) {
    auto r = MappedFile::anonymousCopy("bench weights", stride * copies, fill);
    if (!r.isOk()) {
      std::fprintf(stderr, "kernels_bench: %s\n", r.status().toString().c_str());
      std::abort();
    }
    w.region = *r;
    base = w.region->data();
  } else {
    w.heap.resize(stride * copies);
    (void)fill(w.heap.data());
    base = w.heap.data();
  }
  for (size_t c = 0; c < copies; ++c) {
    TensorView v;
    v.name = "bench";
    v.dtype = dtype;
    v.shape = {n, k};
    v.data = base + c * stride;
    v.nbytes = each;
    w.views.push_back(v);
  }
  return w;
}

std::vector<float> randomActs(int64_t n) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

const DType kDtypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0};

void BM_Gemv(benchmark::State& state) {
  DType dtype = kDtypes[state.range(0)];
  int64_t k = state.range(1), n = state.range(2);
  Weights w = makeWeights(dtype, n, k, size_t{256} << 20);
  std::vector<float> x = randomActs(k), y(static_cast<size_t>(n));
  size_t i = 0;
  for (auto _ : state) {
    matmul(pool(), x.data(), 1, w.views[i], y.data());
    benchmark::DoNotOptimize(y.data());
    i = (i + 1) % w.views.size();
  }
  state.counters["wGB/s"] = benchmark::Counter(static_cast<double>(w.bytesEach()) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(model::dtypeName(dtype)) + " " + kernelIsa());
}

void gemvArgs(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][2] = {
      {1024, 1024}, {1024, 512}, {1024, 2816}, {2816, 1024}, {1024, 32000}};
  for (int d = 0; d < 4; ++d) {
    for (const auto& s : shapes) b->Args({d, s[0], s[1]});
  }
}
BENCHMARK(BM_Gemv)->Apply(gemvArgs)->ArgNames({"dtype", "k", "n"})->UseRealTime()->MinTime(0.3);

// The same m = 1 product on one copy of the weights small enough to stay in L2 (256 x 1024:
// 272 KiB in q8_0, 1 MiB in f32): the kernels' arithmetic rate, which the memory-bound BM_Gemv
// hides. Run with --threads=1 (the pool's hand-off is most of a 2-thread call this short).
void BM_GemvInCache(benchmark::State& state) {
  DType dtype = kDtypes[state.range(0)];
  const int64_t k = 1024, n = 256;
  Weights w = makeWeights(dtype, n, k, 0);
  std::vector<float> x = randomActs(k), y(static_cast<size_t>(n));
  for (auto _ : state) {
    matmul(pool(), x.data(), 1, w.views[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["wGB/s"] = benchmark::Counter(static_cast<double>(w.bytesEach()) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(model::dtypeName(dtype)) + " " + kernelIsa());
}
BENCHMARK(BM_GemvInCache)->DenseRange(0, 3)->ArgName("dtype")->UseRealTime()->MinTime(0.3);

// The medium preset's matmuls of one layer, as {n, k}.
const int64_t kLayerShapes[][2] = {{1024, 1024}, {512, 1024},  {512, 1024}, {1024, 1024},
                                   {2816, 1024}, {2816, 1024}, {1024, 2816}};
constexpr int kLayers = 16;

void BM_DecodeMedium(benchmark::State& state) {
  DType dtype = kDtypes[state.range(0)];
  std::vector<Weights> mats;
  size_t bytes = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (const auto& s : kLayerShapes) {
      mats.push_back(makeWeights(dtype, s[0], s[1], 0));
      bytes += mats.back().bytesEach();
    }
  }
  mats.push_back(makeWeights(dtype, 32000, 1024, 0));
  bytes += mats.back().bytesEach();
  std::vector<float> x = randomActs(2816), y(32000);
  for (auto _ : state) {
    for (const Weights& w : mats) matmul(pool(), x.data(), 1, w.views[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tok/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["wGB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(model::dtypeName(dtype)) + " " + kernelIsa());
}
BENCHMARK(BM_DecodeMedium)->DenseRange(0, 3)->ArgName("dtype")->UseRealTime()->MinTime(1.0);

// A batched decode step: the same matmuls with m = batch activation rows (one per sequence).
// Counter tok/s = m per step. With --threads=1 the CPU column is the step's CPU time (the pool
// runs the work on the calling thread), which is robust on a loaded machine.
void BM_DecodeMediumBatch(benchmark::State& state) {
  DType dtype = kDtypes[state.range(0)];
  int64_t m = state.range(1);
  std::vector<Weights> mats;
  size_t bytes = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (const auto& s : kLayerShapes) {
      mats.push_back(makeWeights(dtype, s[0], s[1], 0));
      bytes += mats.back().bytesEach();
    }
  }
  mats.push_back(makeWeights(dtype, 32000, 1024, 0));
  bytes += mats.back().bytesEach();
  std::vector<float> x = randomActs(m * 2816), y(static_cast<size_t>(m * 32000));
  for (auto _ : state) {
    for (const Weights& w : mats) matmul(pool(), x.data(), m, w.views[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(m), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["wGB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(model::dtypeName(dtype)) + " " + kernelIsa());
}
BENCHMARK(BM_DecodeMediumBatch)
    ->ArgsProduct({{0, 1, 2, 3}, {1, 4, 16, 64}})
    ->ArgNames({"dtype", "m"})
    ->UseRealTime()
    ->MinTime(0.5);

constexpr int64_t kPrefill = 512;

void BM_Gemm(benchmark::State& state) {
  DType dtype = kDtypes[state.range(0)];
  int64_t k = state.range(1), n = state.range(2), m = state.range(3);
  Weights w = makeWeights(dtype, n, k, 0);
  std::vector<float> x = randomActs(m * k), y(static_cast<size_t>(m * n));
  for (auto _ : state) {
    matmul(pool(), x.data(), m, w.views[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * static_cast<double>(m * n * k),
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(model::dtypeName(dtype)) + " " + kernelIsa());
}

void gemmArgs(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][2] = {{1024, 1024}, {1024, 2816}, {2816, 1024}};
  for (int d = 0; d < 4; ++d) {
    for (const auto& s : shapes) b->Args({d, s[0], s[1], kPrefill});
  }
  for (int64_t m : {4, 8, 16, 17, 32, 64}) b->Args({1, 1024, 2816, m});  // gemv/GEMM crossover
}
BENCHMARK(BM_Gemm)
    ->Apply(gemmArgs)
    ->ArgNames({"dtype", "k", "n", "m"})
    ->UseRealTime()
    ->MinTime(0.5);

void BM_PrefillMedium(benchmark::State& state) {
  DType dtype = kDtypes[state.range(0)];
  std::vector<Weights> mats;
  double flops = 0;
  for (const auto& s : kLayerShapes) {
    mats.push_back(makeWeights(dtype, s[0], s[1], 0));
    flops += 2.0 * kPrefill * static_cast<double>(s[0] * s[1]);
  }
  std::vector<float> x = randomActs(kPrefill * 2816), y(static_cast<size_t>(kPrefill * 2816));
  // As the model calls them: q, k, v in one group, o, gate and up in one group, down.
  std::vector<float> y2(y.size()), y3(y.size());
  auto group = [&](std::initializer_list<size_t> members) {
    std::array<MatmulOut, 3> outs;
    float* ys[] = {y.data(), y2.data(), y3.data()};
    size_t n = 0;
    for (size_t i : members) {
      outs[n] = {&mats[i].views[0], ys[n], nullptr};
      ++n;
    }
    matmulGroup(pool(), x.data(), kPrefill, std::span<const MatmulOut>(outs.data(), n));
  };
  for (auto _ : state) {
    group({0, 1, 2});
    group({3});
    group({4, 5});
    group({6});
    benchmark::DoNotOptimize(y.data());
  }
  // One layer per iteration: tokens/s of the 16-layer model's matmuls = 512 / (16 * t).
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(kPrefill) / kLayers,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(model::dtypeName(dtype)) + " " + kernelIsa());
}
BENCHMARK(BM_PrefillMedium)->DenseRange(0, 3)->ArgName("dtype")->UseRealTime()->MinTime(1.0);

void BM_Sgemm1024(benchmark::State& state) {
  const int n = 1024;
  openblas_set_num_threads(static_cast<int>(state.range(0)));
  std::vector<float> a = randomActs(n * n), b = randomActs(n * n), c(size_t{n} * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * n * n * double{n}, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(openblas_get_corename());
  openblas_set_num_threads(1);
}
BENCHMARK(BM_Sgemm1024)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(0.5);

// One decode token's attention in all 16 layers of the medium shape (8 kv heads of 64, 16 query
// heads, blocks of 16 positions) at context `ctx` over a KV cache of `kv` elements; the cache holds
// enough copies of the context (>= 256 MiB in all, blocks in shuffled order as after a server's
// churn) that each step reads it from DRAM, as between a real step's weight reads. Counter:
// kvGB/s = K/V bytes read per second (the time column is the time per step).
void BM_DecodeAttention(benchmark::State& state) {
  const auto kv = static_cast<KvDType>(state.range(0));
  const auto ctx = static_cast<int32_t>(state.range(1));
  KvCacheOptions o;
  o.num_layers = 16;
  o.num_kv_heads = 8;
  o.head_dim = 64;
  o.block_size = 16;
  o.dtype = kv;
  const int32_t blocks = (ctx + o.block_size - 1) / o.block_size;
  const size_t seq_bytes = KvCache::bytesPerToken(o) * static_cast<size_t>(blocks * o.block_size);
  const int32_t copies = static_cast<int32_t>(std::max<size_t>(1, (size_t{256} << 20) / seq_bytes));
  o.num_blocks = blocks * copies;
  auto cache = KvCache::create(o);
  if (!cache.isOk()) {
    state.SkipWithError(cache.status().toString().c_str());
    return;
  }
  std::vector<BlockId> ids(static_cast<size_t>(o.num_blocks));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<BlockId>(i);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(3));
  const std::vector<float> row = randomActs(o.num_kv_heads * o.head_dim);
  for (int32_t layer = 0; layer < o.num_layers; ++layer) {
    for (int32_t p = 0; p < blocks * o.block_size * copies; ++p) {
      (*cache)->store(layer, ids[static_cast<size_t>(p / o.block_size)], p % o.block_size, row.data(), row.data());
    }
  }
  const int32_t n_heads = 16;
  const std::vector<float> q = randomActs(n_heads * o.head_dim);
  std::vector<float> out(q.size());
  PagedAttention attention;
  const AttentionShape shape{n_heads, 0.125f};
  int32_t copy = 0;
  for (auto _ : state) {
    const std::span<const BlockId> table(ids.data() + static_cast<size_t>(copy) * blocks, static_cast<size_t>(blocks));
    const AttentionSeq seq{ctx - 1, 1, 0, table};
    for (int32_t layer = 0; layer < o.num_layers; ++layer) {
      attention.run(pool(), **cache, layer, std::span(&seq, 1), shape, q.data(), out.data());
    }
    benchmark::DoNotOptimize(out.data());
    copy = (copy + 1) % copies;
  }
  const double bytes = static_cast<double>(KvCache::bytesPerToken(o)) * ctx;
  state.counters["kvGB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kvDTypeName(kv)) + " " + kernelIsa());
}
BENCHMARK(BM_DecodeAttention)
    ->ArgsProduct({{static_cast<int64_t>(KvDType::kF32), static_cast<int64_t>(KvDType::kBF16)}, {512, 2048, 8192}})
    ->ArgNames({"kv", "ctx"})
    ->UseRealTime()
    ->MinTime(0.5);

}  // namespace
}  // namespace turbine::engine::cpu

int main(int argc, char** argv) {
  turbine::engine::cpu::reexecForBlasCore(argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--isa=", 6) == 0) {
      if (!turbine::engine::cpu::setKernelIsa(argv[i] + 6)) {
        std::fprintf(stderr, "unknown or unsupported --isa: %s\n", argv[i] + 6);
        return 2;
      }
    }
    if (std::strcmp(argv[i], "--pages=4k") == 0) turbine::engine::cpu::g_huge_pages = false;
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      turbine::engine::cpu::g_threads = std::atoi(argv[i] + 10);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
