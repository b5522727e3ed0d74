// The machine's memory bandwidth, the yardstick of batch-1 decode (which streams every weight
// once per token), over 512 MiB buffers (16x the L3) in two kinds of pages (the `huge` argument):
//   huge=0: plain heap memory (4 KiB pages), as the weights would be in a page-cache file map;
//   huge=1: anonymous memory advised MADV_HUGEPAGE (2 MiB transparent huge pages), as the model
//           loader places the weights by default (model_loader.cc, TURBINE_WEIGHTS).
//  - Copy/<threads>/<huge>: memcpy, split in contiguous shares; counter GB/s = bytes read +
//    bytes written per second (the bandwidth limit uses this figure).
//  - Read/<threads>/<huge>: a read-only stream (a sum of 64-byte loads, two accumulators),
//    contiguous shares per thread; GB/s = bytes read per second: the most a weight-streaming
//    kernel can get. Measured variants (2 threads, interleaved rounds, this 2-core Zen 4 VM):
//    1, 2, 4 or 8 accumulators, software prefetch 256 B-4 KiB ahead (T0/T1/NTA) are all within
//    the noise of each other; 2-4 rows in flight are slower (~0.6x); 2 MiB pages are ~1.3x 4 KiB.
//  - ReadDot/<threads>/<huge>: the same stream through the kernels' dotF32 (against an L1-resident
//    ones vector), i.e. the path of an m = 1 matmul.
// Run: build/bench/memory_bandwidth_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/cpu/kernels.h"
#include "engine/cpu/thread_pool.h"

namespace turbine::engine::cpu {
namespace {

constexpr size_t kBytes = size_t{512} << 20;
constexpr size_t kHugePage = size_t{2} << 20;

// kBytes of memory, 2 MiB aligned; advised for huge pages or explicitly not.
struct Region {
  void* base = nullptr;
  char* data = nullptr;
  explicit Region(bool huge) {
    base = ::mmap(nullptr, kBytes + kHugePage, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) std::abort();
    data = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) &
                                   ~(kHugePage - 1));
    (void)::madvise(data, kBytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    auto* f = reinterpret_cast<float*>(data);
    for (size_t i = 0; i < kBytes / sizeof(float); ++i) f[i] = static_cast<float>(i & 1023);
  }
  ~Region() { ::munmap(base, kBytes + kHugePage); }
};

struct Buffers {
  Region src;
  Region dst;
  explicit Buffers(bool huge) : src(huge), dst(huge) {}
};

Buffers& buffers(bool huge) {
  if (huge) {
    static Buffers large(true);
    return large;
  }
  static Buffers small(false);
  return small;
}

void BM_Copy(benchmark::State& state) {
  int threads = static_cast<int>(state.range(0));
  ThreadPool pool(threads);
  Buffers& b = buffers(state.range(1) != 0);
  const char* src = b.src.data;
  char* dst = b.dst.data;
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

// Sum of n floats (n % 32 == 0, 64-byte aligned), two accumulators of 16 lanes.
__attribute__((target("avx512f"))) float sumAvx512(const float* p, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 32) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
  }
  alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: it trips GCC 12's -Wuninitialized
  _mm512_store_ps(lanes, _mm512_add_ps(a0, a1));
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}
__attribute__((target("avx"))) float sumAvx(const float* p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}

template <bool kDot>
void readBench(benchmark::State& state) {
  int threads = static_cast<int>(state.range(0));
  ThreadPool pool(threads);
  const auto* src = reinterpret_cast<const float*>(buffers(state.range(1) != 0).src.data);
  const int64_t n = static_cast<int64_t>(kBytes / sizeof(float));
  const bool avx512 = __builtin_cpu_supports("avx512f");
  std::vector<float> partial(static_cast<size_t>(threads));
  for (auto _ : state) {
    pool.parallelFor(threads, [&](int t, int64_t begin, int64_t end) {
      int64_t lo = n / threads * begin, hi = n / threads * end;
      float s = 0;
      if (kDot) {  // x[i] * 1 through dotF32, 64 KiB at a time
        static thread_local std::vector<float> ones(16384, 1.0f);
        for (int64_t i = lo; i < hi; i += 16384) s += dotF32(src + i, ones.data(), 16384);
      } else {
        s = avx512 ? sumAvx512(src + lo, hi - lo) : sumAvx(src + lo, hi - lo);
      }
      partial[static_cast<size_t>(t)] = s;
    });
    benchmark::DoNotOptimize(partial.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(1.0 * kBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_Read(benchmark::State& state) { readBench<false>(state); }
void BM_ReadDot(benchmark::State& state) { readBench<true>(state); }

void bandwidthArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads", "huge"})->UseRealTime()->MinTime(2.0);
  for (int huge : {0, 1}) {
    for (int threads : {1, 2}) b->Args({threads, huge});
  }
}
BENCHMARK(BM_Copy)->Apply(bandwidthArgs);
BENCHMARK(BM_Read)->Apply(bandwidthArgs);
BENCHMARK(BM_ReadDot)->Apply(bandwidthArgs);

}  // namespace
}  // namespace turbine::engine::cpu

BENCHMARK_MAIN();
