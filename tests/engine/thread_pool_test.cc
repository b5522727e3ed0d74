// ThreadPool: every index of [0, n) is visited exactly once, ranges are contiguous and at most
// size() of them, for many n and thread counts, over many back-to-back regions.
#include "engine/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace turbine::engine::cpu {
namespace {

TEST(ThreadPoolTest, DefaultSizeIsOnlineCores) {
  ThreadPool pool(0);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(pool.size(), cores > 0 ? cores : 1);
}

TEST(ThreadPoolTest, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 5, 8}) {
    ThreadPool pool(threads);
    ASSERT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 4, 7, 8, 9, 31, 100, 1000, 12345}) {
      SCOPED_TRACE(testing::Message() << "threads=" << threads << " n=" << n);
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      std::mutex mu;
      std::vector<int> thread_ids;
      pool.parallelFor(n, [&](int t, int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        calls.fetch_add(1);
        {
          std::lock_guard<std::mutex> lock(mu);
          thread_ids.push_back(t);
        }
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
      EXPECT_LE(calls.load(), threads);
      EXPECT_EQ(calls.load(), n == 0 ? 0 : std::min<int64_t>(n, threads));
      std::sort(thread_ids.begin(), thread_ids.end());
      for (size_t i = 0; i < thread_ids.size(); ++i) {
        EXPECT_EQ(thread_ids[i], static_cast<int>(i));  // distinct indices in [0, size)
      }
    }
  }
}

// parallelForBalanced: every index once, in grains of at most `grain`, for many shapes; and a
// thread held up on its first grain has the rest of its share taken by the others.
TEST(ThreadPoolTest, BalancedEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 31, 100, 1000, 12345}) {
      for (int64_t grain : {1, 3, 16, 5000}) {
        SCOPED_TRACE(testing::Message() << "threads=" << threads << " n=" << n << " grain=" << grain);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallelForBalanced(n, grain, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LT(b, e);
          ASSERT_LE(e, n);
          ASSERT_LE(e - b, grain);
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
      }
    }
  }
}

TEST(ThreadPoolTest, BalancedStealsFromASlowThread) {
  ThreadPool pool(2);
  const int64_t n = 64;
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> late_grains{0};
  std::atomic<bool> slow_done{false};
  pool.parallelForBalanced(n, 1, [&](int64_t b, int64_t e) {
    if (b == n / 2) {  // the first grain of the second share: hold it until the rest is done
      for (int i = 0; i < 2000 && !slow_done.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    } else if (b > n / 2) {
      late_grains.fetch_add(1);
    }
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    int total = 0;
    for (const auto& h : hits) total += h.load();
    if (total == n - 1) slow_done.store(true);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
  EXPECT_EQ(late_grains.load(), n / 2 - 1);
  EXPECT_TRUE(slow_done.load()) << "the other thread did not take the held-up share's grains";
}

TEST(ThreadPoolTest, ManyBackToBackRegions) {
  ThreadPool pool(2);
  int64_t total = 0;
  std::vector<int64_t> partial(2);
  for (int iter = 0; iter < 3000; ++iter) {
    int64_t n = 1 + iter % 37;
    partial.assign(2, 0);
    pool.parallelFor(n, [&](int t, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) partial[static_cast<size_t>(t)] += i;
    });
    total += partial[0] + partial[1];
  }
  int64_t expect = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    int64_t n = 1 + iter % 37;
    expect += n * (n - 1) / 2;
  }
  EXPECT_EQ(total, expect);
}

TEST(ThreadPoolTest, WakesAfterSleeping) {
  ThreadPool pool(3);
  for (int iter = 0; iter < 3; ++iter) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // workers go to sleep
    std::atomic<int64_t> sum{0};
    pool.parallelFor(300, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
    });
    EXPECT_EQ(sum.load(), 300 * 299 / 2);
  }
}

TEST(ThreadPoolTest, RegionOverheadIsSmall) {
  ThreadPool pool(2);
  std::atomic<int> sink{0};
  auto start = std::chrono::steady_clock::now();
  constexpr int kIters = 3000;
  for (int i = 0; i < kIters; ++i) {
    pool.parallelFor(2, [&](int t, int64_t, int64_t) { sink.fetch_add(t); });
  }
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kIters;
  RecordProperty("region_us", std::to_string(us));
  // Loose bound: a futex round trip per region would be ~10-50 us; a shared, loaded machine
  // may still preempt us, so this only catches gross regressions.
  EXPECT_LT(us, 200.0);
  EXPECT_EQ(sink.load(), kIters);
}

}  // namespace
}  // namespace turbine::engine::cpu
