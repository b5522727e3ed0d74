// The capacity model (planner/capacity_model.h): its limits, its monotonicity, its rate search,
// and its estimates against the simulated engine that runs on the same timing profile.
#include "planner/capacity_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mocker/simulator.h"
#include "router/router.h"

namespace turbine::planner {
namespace {

using mocker::TimingProfile;

// Poisson arrivals at `rate` req/s of distinct prompts (no prefix sharing) of `blocks` x 512 - 100
// tokens, `output` tokens each, for `seconds`.
std::vector<mocker::TraceRequest> poissonTrace(double rate, double seconds, int32_t blocks,
                                               int32_t output, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  std::vector<mocker::TraceRequest> out;
  int64_t next_id = 0;
  for (double t = 0; t < seconds; t += gap(rng)) {
    mocker::TraceRequest r;
    r.timestamp_ms = t * 1000.0;
    for (int32_t b = 0; b < blocks; ++b) r.hash_ids.push_back(next_id++);
    r.input_length = blocks * 512 - 100;
    r.output_length = output;
    out.push_back(r);
  }
  return out;
}

mocker::SimulationReport simulateFleet(const std::vector<mocker::TraceRequest>& trace, int32_t workers,
                                       const TimingProfile& profile) {
  mocker::SimulationOptions o;
  o.workers = workers;
  o.kv_blocks_per_worker = 4096;
  o.profile = profile;
  router::RouterOptions ro;
  ro.policy = "round-robin";
  auto router = router::makeRouter(ro);
  EXPECT_TRUE(router.isOk());
  auto rep = mocker::simulate(trace, o, **router);
  EXPECT_TRUE(rep.isOk()) << rep.status().toString();
  return rep.isOk() ? *rep : mocker::SimulationReport{};
}

// The model against the simulated engine on the same profile: 4 workers behind round-robin,
// Poisson arrivals at 30% and 70% of a worker's work capacity, three workload shapes. Measured
// when written: ITL within 1-4%, TTFT 0.81-1.0x of the simulation (the model is a little
// pessimistic about prefill queueing).
TEST(CapacityModelTest, AggEstimateMatchesTheSimulatedEngine) {
  const TimingProfile p;
  for (auto [blocks, out] : {std::pair{1, 500}, {4, 200}, {16, 300}}) {
    for (double u : {0.3, 0.7}) {
      const Workload w{blocks * 512.0 - 100, double(out), 0};
      const double rate = u / estimateWorker(p, WorkerRole::kAgg, w, 1.0).utilization;
      const auto r = simulateFleet(poissonTrace(4 * rate, 120, blocks, out, 1), 4, p);
      const auto e = estimateWorker(p, WorkerRole::kAgg, w, rate);
      ASSERT_TRUE(e.stable);
      EXPECT_NEAR(r.itl_ms.mean / e.itl_ms, 1.0, 0.1) << blocks << " blocks, u " << u;
      EXPECT_GT(r.ttft_ms.mean / e.ttft_ms, 0.75) << blocks << " blocks, u " << u;
      EXPECT_LT(r.ttft_ms.mean / e.ttft_ms, 1.1) << blocks << " blocks, u " << u;
    }
  }
}

TEST(CapacityModelTest, LatencyGrowsWithRateUntilTheWorkerSaturates) {
  const TimingProfile p;
  const Workload w{2000, 200, 0};
  const auto idle = estimateWorker(p, WorkerRole::kAgg, w, 0);
  EXPECT_DOUBLE_EQ(idle.step_ms, p.step_base_us / 1000);
  EXPECT_DOUBLE_EQ(idle.itl_ms, idle.step_ms);
  // Alone: half a step of wait, one step, the prompt's own work.
  EXPECT_NEAR(idle.ttft_ms, 1.5 * idle.step_ms + (mocker::prefillTimeUs(p, 0, 2000) - p.step_base_us) / 1000, 1e-9);
  const double saturation = 1.0 / estimateWorker(p, WorkerRole::kAgg, w, 1.0).utilization;
  double last_ttft = 0, last_itl = 0;
  for (double f = 0.05; f < 1.0; f += 0.05) {
    const auto e = estimateWorker(p, WorkerRole::kAgg, w, f * saturation);
    ASSERT_TRUE(e.stable) << f;
    EXPECT_GT(e.ttft_ms, last_ttft);
    EXPECT_GT(e.itl_ms, last_itl);
    EXPECT_NEAR(e.utilization, f, 1e-9);
    last_ttft = e.ttft_ms;
    last_itl = e.itl_ms;
  }
  const auto over = estimateWorker(p, WorkerRole::kAgg, w, saturation);
  EXPECT_FALSE(over.stable);
  EXPECT_TRUE(std::isinf(over.itl_ms));
  // A faster engine (speedup 2) does the same work in half the time: twice the rate at equal use.
  TimingProfile fast = p;
  fast.speedup = 2;
  EXPECT_NEAR(estimateWorker(fast, WorkerRole::kAgg, w, 2.0).utilization,
              estimateWorker(p, WorkerRole::kAgg, w, 1.0).utilization, 1e-12);
}

TEST(CapacityModelTest, MaxRateIsTheEdgeOfTheTargets) {
  const TimingProfile p;
  const Workload w{4000, 300, 0.25};
  const LatencyTargets t{400, 20};
  for (WorkerRole role : {WorkerRole::kAgg, WorkerRole::kPrefill, WorkerRole::kDecode}) {
    const double r = maxRatePerWorker(p, role, w, t, 0.9);
    ASSERT_GT(r, 0) << workerRoleName(role);
    ASSERT_TRUE(std::isfinite(r));
    auto within = [&](double rate) {
      const auto e = estimateWorker(p, role, w, rate);
      return e.stable && e.utilization <= 0.9 + 1e-9 &&
             (role == WorkerRole::kDecode || e.ttft_ms <= t.ttft_ms + 1e-6) &&
             (role == WorkerRole::kPrefill || e.itl_ms <= t.itl_ms + 1e-6);
    };
    EXPECT_TRUE(within(r)) << workerRoleName(role);
    EXPECT_FALSE(within(r * 1.01)) << workerRoleName(role);
  }
  // Each role answers for its own part: a prefill worker ignores the ITL, a decode worker the TTFT.
  EXPECT_DOUBLE_EQ(maxRatePerWorker(p, WorkerRole::kPrefill, w, {400, 0.001}, 0.9),
                   maxRatePerWorker(p, WorkerRole::kPrefill, w, t, 0.9));
  EXPECT_DOUBLE_EQ(maxRatePerWorker(p, WorkerRole::kDecode, w, {0.001, 20}, 0.9),
                   maxRatePerWorker(p, WorkerRole::kDecode, w, t, 0.9));
  // Splitting the roles: a decode worker takes more requests than an agg worker at the same ITL.
  EXPECT_GT(maxRatePerWorker(p, WorkerRole::kDecode, w, t, 0.9),
            maxRatePerWorker(p, WorkerRole::kAgg, w, t, 0.9));
  // Out of reach: the prompt alone takes longer than the TTFT target; a step longer than the ITL.
  EXPECT_EQ(maxRatePerWorker(p, WorkerRole::kAgg, {40000, 100, 0}, {100, 50}, 0.9), 0);
  EXPECT_EQ(maxRatePerWorker(p, WorkerRole::kDecode, w, {1000, 4}, 0.9), 0);
  // The utilization cap binds when the targets are loose.
  const double loose = maxRatePerWorker(p, WorkerRole::kAgg, w, {1e9, 1e9}, 0.5);
  EXPECT_NEAR(estimateWorker(p, WorkerRole::kAgg, w, loose).utilization, 0.5, 1e-6);
  // More of the prompt cached: less prefill work, a higher rate.
  EXPECT_GT(maxRatePerWorker(p, WorkerRole::kAgg, {4000, 300, 0.75}, t, 0.9),
            maxRatePerWorker(p, WorkerRole::kAgg, w, t, 0.9));
}

}  // namespace
}  // namespace turbine::planner
