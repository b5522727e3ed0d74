// PredictionLru against a reference (std::map of live keys + their touch times) on random
// touch / erase / expire streams, with growth of the table and of the ring.
#include "kv/prediction_lru.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>
#include <random>

namespace turbine::kv {
namespace {

TEST(PredictionLruTest, MatchesReferenceLruWithTtlAndCap) {
  std::mt19937_64 rng(3);
  PredictionLru lru;
  std::map<std::pair<BlockHash, uint32_t>, int64_t> ref;  // live key -> last touch
  int64_t now = 0;
  constexpr int64_t kTtl = 500;
  constexpr size_t kCap = 3000;
  for (int step = 0; step < 200000; ++step) {
    now += 1 + static_cast<int64_t>(rng() % 2);  // strictly increasing: no ties in age
    const BlockHash h = rng() % 4000;
    const auto w = static_cast<uint32_t>(rng() % 3);
    const auto r = rng() % 100;
    if (r < 70) {
      const bool fresh = lru.touch(h, w, now);
      EXPECT_EQ(fresh, ref.count({h, w}) == 0);
      ref[{h, w}] = now;
    } else if (r < 90) {
      EXPECT_EQ(lru.erase(h, w), ref.erase({h, w}) == 1);
    } else if (r < 99) {
      std::vector<std::pair<BlockHash, uint32_t>> dropped;
      lru.expire(now, kTtl, kCap, [&](BlockHash dh, uint32_t dw) { dropped.emplace_back(dh, dw); });
      // Reference: drop the oldest while too old or over the cap.
      while (!ref.empty()) {
        auto oldest = ref.begin();
        for (auto it = ref.begin(); it != ref.end(); ++it)
          if (it->second < oldest->second) oldest = it;
        if (now - oldest->second <= kTtl && ref.size() <= kCap) break;
        ref.erase(oldest);
      }
      for (const auto& k : dropped) EXPECT_EQ(ref.count(k), 0u);
    } else {
      lru.eraseWorker(w);
      for (auto it = ref.begin(); it != ref.end();) it = it->first.second == w ? ref.erase(it) : std::next(it);
    }
    if (step % 5000 == 0) {
      ASSERT_EQ(lru.size(), ref.size()) << step;
      for (const auto& [k, t] : ref) ASSERT_TRUE(lru.contains(k.first, k.second)) << step;
      for (uint32_t x = 0; x < 4; ++x) {  // live keys per worker (4: never touched)
        const auto n = std::count_if(ref.begin(), ref.end(), [x](const auto& e) { return e.first.second == x; });
        ASSERT_EQ(lru.liveOf(x), static_cast<size_t>(n)) << step << " worker " << x;
      }
    }
  }
  EXPECT_GT(lru.memoryBytes(), 0u);
}

// Growth to tables of 2 MiB and more (the doubled table faulted in by a helper thread, inserts
// meanwhile going on in the old one, then the old one moved a cluster at a time) while keys are
// touched, erased, expired and a worker's keys dropped: after every operation of the moves the
// reference's keys are all there (including those whose old home has not moved yet and those
// inserted into the new table meanwhile), and nothing else.
TEST(PredictionLruTest, GrowsAClusterAtATimeWhileInUse) {
  std::mt19937_64 rng(21);
  PredictionLru lru;
  std::map<std::pair<BlockHash, uint32_t>, int64_t> ref;
  int64_t now = 0;
  size_t growing_checks = 0, largest = 0;
  auto check = [&](int step) {
    ASSERT_EQ(lru.size(), ref.size()) << step;
    for (const auto& [k, t] : ref) ASSERT_TRUE(lru.contains(k.first, k.second)) << step;
    for (uint32_t w = 0; w < 4; ++w) {
      const auto n = std::count_if(ref.begin(), ref.end(), [w](const auto& e) { return e.first.second == w; });
      ASSERT_EQ(lru.liveOf(w), static_cast<size_t>(n)) << step;
    }
    // Keys never touched are not found (hashes above the range touched).
    for (int i = 0; i < 64; ++i) ASSERT_FALSE(lru.contains(1'000'000 + rng() % 1000, static_cast<uint32_t>(rng() % 4)));
  };
  for (int step = 0; step < 400'000; ++step) {
    ++now;
    const BlockHash h = rng() % 150'000;
    const auto w = static_cast<uint32_t>(rng() % 4);
    const auto r = rng() % 1000;
    if (r < 750) {
      EXPECT_EQ(lru.touch(h, w, now), ref.count({h, w}) == 0);
      ref[{h, w}] = now;
    } else if (r < 990) {
      EXPECT_EQ(lru.erase(h, w), ref.erase({h, w}) == 1);
    } else if (r < 999) {  // expire the oldest few (a cap just under the size)
      const size_t cap = ref.size() > 3 ? ref.size() - 3 : ref.size();
      std::vector<std::pair<BlockHash, uint32_t>> dropped;
      lru.expire(now, 1 << 30, cap, [&](BlockHash dh, uint32_t dw) { dropped.emplace_back(dh, dw); });
      for (const auto& k : dropped) ASSERT_EQ(ref.erase(k), 1u) << step;
      ASSERT_EQ(lru.size(), ref.size()) << step;
    } else if (step > 200'000 && step % 50 == 0) {  // rare: a worker's keys dropped
      lru.eraseWorker(w);
      for (auto it = ref.begin(); it != ref.end();) it = it->first.second == w ? ref.erase(it) : std::next(it);
    }
    largest = std::max(largest, lru.tableSlots());
    if (lru.growing() && step % 997 == 0) {
      ++growing_checks;
      check(step);
    } else if (step % 50'000 == 0) {
      check(step);
    }
  }
  check(-1);
  EXPECT_GE(largest * 16, size_t{4} << 20);  // tables past the 2 MiB of a mapping of their own
  EXPECT_GT(growing_checks, 10u);            // checked while moving
}

// 3,000 keys touched once, then 1,000 keys touched over and over (their stale records start
// compaction passes, whose first records are the live ones of the once-touched keys), while the
// cap pops the two oldest keys every 37 touches, in the middle of passes: every pop is the
// reference's oldest key, and at the end every key still expires (a record lost or skipped by a
// pass would leave its key live forever).
TEST(PredictionLruTest, ExpiryDuringACompactionPassLosesNoRecord) {
  PredictionLru lru;
  std::map<BlockHash, int64_t> last;  // key (worker 0) -> last touch
  std::mt19937_64 rng(9);
  int64_t now = 0;
  for (BlockHash cold = 100'000; cold < 103'000; ++cold) {
    lru.touch(cold, 0, ++now);
    last[cold] = now;
  }
  size_t pops = 0;
  for (int step = 0; step < 200'000; ++step) {
    const BlockHash h = rng() % 1000;
    lru.touch(h, 0, ++now);
    last[h] = now;
    if (step % 37 == 0) {
      std::vector<BlockHash> dropped;
      lru.expire(now, int64_t{1} << 40, last.size() - 2, [&](BlockHash d, uint32_t) { dropped.push_back(d); });
      ASSERT_EQ(dropped.size(), 2u) << step;
      for (BlockHash d : dropped) {
        auto it = last.begin();
        for (auto j = last.begin(); j != last.end(); ++j)
          if (j->second < it->second) it = j;
        ASSERT_EQ(d, it->first) << step;
        last.erase(it);
        ++pops;
      }
    }
  }
  EXPECT_GT(pops, 3000u);  // the once-touched keys, then hot ones
  std::vector<BlockHash> dropped;
  lru.expire(now + 1, 0, 0, [&](BlockHash d, uint32_t) { dropped.push_back(d); });
  EXPECT_EQ(dropped.size(), last.size());
  EXPECT_EQ(lru.size(), 0u);
}

// Touches within the coalescing gap of a key's recorded touch are not recorded: the key expires
// by its recorded touch (up to the gap early); a touch past the gap renews it.
TEST(PredictionLruTest, TouchesWithinTheGapAreCoalesced) {
  PredictionLru lru;
  EXPECT_TRUE(lru.touch(1, 0, 0, 100));
  EXPECT_FALSE(lru.touch(1, 0, 99, 100));   // coalesced
  EXPECT_TRUE(lru.touch(2, 0, 0, 100));
  EXPECT_FALSE(lru.touch(2, 0, 100, 100));  // recorded: 100 is the gap
  std::vector<BlockHash> dropped;
  auto collect = [&](BlockHash h, uint32_t) { dropped.push_back(h); };
  lru.expire(1001, 1000, 10, collect);
  EXPECT_EQ(dropped, std::vector<BlockHash>{1});
  lru.expire(1100, 1000, 10, collect);
  EXPECT_EQ(dropped.size(), 1u);  // 2 lives until 1100 + 1
  lru.expire(1101, 1000, 10, collect);
  EXPECT_EQ(dropped, (std::vector<BlockHash>{1, 2}));
  // A gap of 0 records every touch.
  lru.touch(3, 0, 2000);
  lru.touch(3, 0, 2001);
  lru.expire(3001, 1000, 10, collect);
  EXPECT_EQ(dropped.size(), 2u);
}

TEST(PredictionLruTest, OldestGoFirstAndRetouchRenews) {
  PredictionLru lru;
  lru.touch(1, 0, 0);
  lru.touch(2, 0, 10);
  lru.touch(1, 0, 20);  // renewed: now newer than 2
  std::vector<BlockHash> dropped;
  lru.expire(20, 1000, 1, [&](BlockHash h, uint32_t) { dropped.push_back(h); });
  ASSERT_EQ(dropped, std::vector<BlockHash>{2});
  EXPECT_TRUE(lru.contains(1, 0));
  lru.expire(1021, 1000, 10, [&](BlockHash h, uint32_t) { dropped.push_back(h); });
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(lru.size(), 0u);
}

// Few keys touched over and over within the TTL: stale records pile up and are compacted away
// (the ring stays bounded), and every key still expires exactly when its last touch leaves the
// TTL, in age order, across the compactions.
TEST(PredictionLruTest, CompactsStaleRecordsWithoutLosingAny) {
  PredictionLru lru;
  std::map<BlockHash, int64_t> last;  // key (worker 0) -> last touch
  std::mt19937_64 rng(7);
  int64_t now = 0;
  size_t most_bytes = 0;
  for (BlockHash cold = 1000; cold < 1050; ++cold) {  // touched once: their records must survive
    lru.touch(cold, 0, ++now);
    last[cold] = now;
  }
  for (int step = 0; step < 200000; ++step) {
    const BlockHash h = rng() % 300;
    lru.touch(h, 0, ++now);
    last[h] = now;
    if (step % 9973 == 0) {  // an erase now and then: its records turn stale too
      const BlockHash e = rng() % 300;
      EXPECT_EQ(lru.erase(e, 0), last.erase(e) == 1);
    }
    most_bytes = std::max(most_bytes, lru.memoryBytes());
    // Stop now and then and check expiry by age.
    if (step == 77777 || step == 150001 || step == 199999) {
      std::vector<std::pair<int64_t, BlockHash>> by_age;
      for (const auto& [k, t] : last) by_age.emplace_back(t, k);
      std::sort(by_age.begin(), by_age.end());
      // Expire the older half (by a TTL just under the median key's age), then check.
      const int64_t cut = by_age[by_age.size() / 2].first;
      std::vector<BlockHash> dropped;
      lru.expire(now, now - cut, 1 << 20, [&](BlockHash d, uint32_t) { dropped.push_back(d); });
      std::vector<BlockHash> want;
      for (const auto& [t, k] : by_age) {
        if (t < cut) want.push_back(k);  // in age order: expiry pops oldest first
      }
      ASSERT_EQ(dropped, want) << "step " << step;
      for (BlockHash k : want) last.erase(k);
      ASSERT_EQ(lru.size(), last.size());
      for (const auto& [k, t] : last) ASSERT_TRUE(lru.contains(k, 0)) << k;
    }
  }
  // 200,000 touches of <= 300 keys: without compaction the ring would hold 262,144 records.
  EXPECT_LT(most_bytes, size_t{32768} * 24 + 1024 * 24 * 4) << most_bytes;
}

}  // namespace
}  // namespace turbine::kv
