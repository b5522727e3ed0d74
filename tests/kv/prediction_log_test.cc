// PredictionLog: records and their hashes come back oldest first as the fixed rings wrap many
// times; fits() says when the oldest must go first; a worker's records are kept but forget it.
#include "kv/prediction_log.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <vector>

namespace turbine::kv {
namespace {

struct Want {
  int64_t time;
  uint32_t worker;
  std::vector<BlockHash> hashes;
};

TEST(PredictionLogTest, RecordsComeBackOldestFirstAsTheRingsWrap) {
  std::mt19937_64 rng(5);
  PredictionLog log(1000);  // rounded up: 65,536 hashes, 16,384 records
  ASSERT_EQ(log.maxHashes(), size_t{1} << 16);
  EXPECT_EQ(log.memoryBytes(), 0u);
  std::deque<Want> ref;
  size_t ref_hashes = 0;
  size_t refused_hashes = 0, refused_records = 0;
  auto popOne = [&] {
    const Want& w = ref.front();
    ASSERT_EQ(log.front().time_us, w.time);
    ASSERT_EQ(log.front().worker, w.worker);
    ASSERT_EQ(log.front().count, w.hashes.size());
    for (size_t k = 0; k < w.hashes.size(); ++k) ASSERT_EQ(log.frontHash(k), w.hashes[k]);
    log.popFront();
    ref_hashes -= w.hashes.size();
    ref.pop_front();
  };
  for (int step = 0; step < 400000; ++step) {
    // Long records fill the hash ring first, one-hash records the record ring.
    const bool long_phase = (step / 50000) % 2 == 0;
    if (rng() % 100 < (long_phase ? 60u : 80u)) {
      Want w{step, static_cast<uint32_t>(rng() % 8), {}};
      const size_t n = long_phase ? rng() % 40 : 1;
      for (size_t k = 0; k < n; ++k) w.hashes.push_back(rng());
      const bool fits = ref_hashes + n <= (size_t{1} << 16) && ref.size() + 1 <= (size_t{1} << 14);
      ASSERT_EQ(log.fits(n), fits) << step;
      if (!fits) {
        (ref_hashes + n > (size_t{1} << 16) ? refused_hashes : refused_records)++;
        popOne();
        continue;
      }
      log.append(w.time, w.worker, w.hashes);
      if (n > 0) {
        ref_hashes += n;
        ref.push_back(std::move(w));
      }
    } else if (!ref.empty()) {
      popOne();
    }
    ASSERT_EQ(log.records(), ref.size());
    ASSERT_EQ(log.hashes(), ref_hashes);
  }
  EXPECT_GT(refused_hashes, 0u);   // both rings were full at times
  EXPECT_GT(refused_records, 0u);
  EXPECT_EQ(log.memoryBytes(), (size_t{1} << 16) * sizeof(BlockHash) + (size_t{1} << 14) * sizeof(PredictionLog::Record));
  log.forgetWorker(3);
  for (const Want& w : ref) {
    ASSERT_EQ(log.front().worker, w.worker == 3 ? PredictionLog::kNoWorker : w.worker);
    ASSERT_EQ(log.front().count, w.hashes.size());
    log.popFront();
  }
  EXPECT_TRUE(log.empty());
}

}  // namespace
}  // namespace turbine::kv
