// The machine's memory bandwidth, the yardstick of batch-1 decode (which streams every weight
// once per token):
//  - Copy/<threads>: memcpy of 1 GiB (split in contiguous halves with 2 threads);
//    counter GB/s = bytes read + bytes written per second.
//  - Read/<threads>: a vectorized sum over 1 GiB; GB/s = bytes read per second (the limit of a
//    weight-streaming kernel).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/cpu/kernels.h"
#include "engine/cpu/thread_pool.h"

namespace turbine::engine::cpu {
namespace {

constexpr size_t kBytes = size_t{1} << 30;

struct Buffers {
  std::unique_ptr<float[]> src{new float[kBytes / sizeof(float)]};
  std::unique_ptr<float[]> dst{new float[kBytes / sizeof(float)]};
  Buffers() {
    for (size_t i = 0; i < kBytes / sizeof(float); ++i) src[i] = static_cast<float>(i & 1023);
    std::memset(dst.get(), 0, kBytes);
  }
};

Buffers& buffers() {
  static Buffers b;
  return b;
}

void BM_Copy(benchmark::State& state) {
  int threads = static_cast<int>(state.range(0));
  ThreadPool pool(threads);
  Buffers& b = buffers();
  const auto* src = reinterpret_cast<const char*>(b.src.get());
  auto* dst = reinterpret_cast<char*>(b.dst.get());
  for (auto _ : state) {
    pool.parallelFor(threads, [&](int, int64_t begin, int64_t end) {
      size_t lo = kBytes / static_cast<size_t>(threads) * static_cast<size_t>(begin);
      size_t hi = kBytes / static_cast<size_t>(threads) * static_cast<size_t>(end);
      std::memcpy(dst + lo, src + lo, hi - lo);
    });
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] =
      benchmark::Counter(2.0 * kBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Copy)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(2.0);

void BM_Read(benchmark::State& state) {
  int threads = static_cast<int>(state.range(0));
  ThreadPool pool(threads);
  Buffers& b = buffers();
  const float* src = b.src.get();
  const int64_t n = static_cast<int64_t>(kBytes / sizeof(float));
  std::vector<float> partial(static_cast<size_t>(threads));
  for (auto _ : state) {
    pool.parallelFor(threads, [&](int t, int64_t begin, int64_t end) {
      int64_t lo = n / threads * begin, hi = n / threads * end;
      // Sum of x[i] * 1: dotF32 against a cached ones vector, 64 KiB at a time.
      static thread_local std::vector<float> ones(16384, 1.0f);
      float s = 0;
      for (int64_t i = lo; i < hi; i += 16384) s += dotF32(src + i, ones.data(), 16384);
      partial[static_cast<size_t>(t)] = s;
    });
    benchmark::DoNotOptimize(partial.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(1.0 * kBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Read)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace turbine::engine::cpu

BENCHMARK_MAIN();
