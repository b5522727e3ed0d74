// PredictionLog: records and their hashes come back oldest first across ring growth and
// wrap-around; a worker's records are kept but forget it.
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

TEST(PredictionLogTest, RecordsComeBackOldestFirstAcrossGrowthAndWrap) {
  std::mt19937_64 rng(5);
  PredictionLog log;
  std::deque<Want> ref;
  size_t ref_hashes = 0;
  for (int step = 0; step < 60000; ++step) {
    // Appends outrun pops for a while (the rings double), then pops catch up (they wrap).
    const bool grow_phase = (step / 10000) % 2 == 0;
    if (rng() % 100 < (grow_phase ? 70u : 40u)) {
      Want w{step, static_cast<uint32_t>(rng() % 8), {}};
      const size_t n = rng() % 40;  // 0: nothing is appended
      for (size_t k = 0; k < n; ++k) w.hashes.push_back(rng());
      log.append(w.time, w.worker, w.hashes);
      if (n > 0) {
        ref_hashes += n;
        ref.push_back(std::move(w));
      }
    } else if (!ref.empty()) {
      ASSERT_FALSE(log.empty());
      const Want& w = ref.front();
      ASSERT_EQ(log.front().time_us, w.time) << step;
      ASSERT_EQ(log.front().worker, w.worker) << step;
      ASSERT_EQ(log.front().count, w.hashes.size()) << step;
      for (size_t k = 0; k < w.hashes.size(); ++k) ASSERT_EQ(log.frontHash(k), w.hashes[k]) << step;
      log.popFront();
      ref_hashes -= w.hashes.size();
      ref.pop_front();
    }
    ASSERT_EQ(log.records(), ref.size());
    ASSERT_EQ(log.hashes(), ref_hashes);
  }
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
