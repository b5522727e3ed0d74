// The SLA planner (planner/sla_planner.h): replica arithmetic, the scale-down delay, the budget,
// the correction from observed latency, option checks, and the planner in the loop of the
// simulated fleet (mocker::simulate's Autoscaler) on a trace whose load steps up and down.
#include "planner/sla_planner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mocker/simulator.h"
#include "planner/fleet_observer.h"
#include "router/router.h"

namespace turbine::planner {
namespace {

PlannerOptions aggOptions() {
  PlannerOptions o;
  o.targets = {500, 30};
  o.min_workers = 1;
  o.max_workers = 32;
  o.scale_down_delay = 1;
  o.correction = false;
  return o;
}

Observation observed(double rate, double interval_s, Replicas serving) {
  Observation o;
  o.interval_s = interval_s;
  o.requests = rate * interval_s;
  o.mean_input_tokens = 2000;
  o.mean_output_tokens = 200;
  o.serving = serving;
  return o;
}

TEST(SlaPlannerTest, ReplicasFollowTheRateOverTheWorkersCapacity) {
  const PlannerOptions o = aggOptions();
  SlaPlanner planner(o);
  const double per_worker = maxRatePerWorker(o.profile, WorkerRole::kAgg, {2000, 200, 0}, o.targets, o.max_utilization);
  ASSERT_GT(per_worker, 0);
  for (double rate : {0.1, 1.0, 5.0, 20.0, 60.0}) {
    const Plan p = planner.plan(observed(rate, 10, {2, 0, 0}));
    EXPECT_NEAR(p.predicted_rate, rate, 1e-9);
    EXPECT_EQ(p.replicas.agg, std::max(1, static_cast<int>(std::ceil(rate / per_worker - 1e-9)))) << rate;
    EXPECT_EQ(p.replicas.prefill + p.replicas.decode, 0);
    EXPECT_NEAR(p.max_rate_agg, per_worker, 1e-9);
    EXPECT_TRUE(p.feasible);
  }
  // No traffic: the minimum, never zero.
  EXPECT_EQ(planner.plan(observed(0, 10, {3, 0, 0})).replicas.agg, 1);
}

TEST(SlaPlannerTest, DisaggregatedFleetsSizeEachRole) {
  PlannerOptions o = aggOptions();
  o.mode = FleetMode::kDisagg;
  SlaPlanner planner(o);
  const Workload w{2000, 200, 0};
  const double prefill = maxRatePerWorker(o.profile, WorkerRole::kPrefill, w, o.targets, o.max_utilization);
  const double decode = maxRatePerWorker(o.profile, WorkerRole::kDecode, w, o.targets, o.max_utilization);
  const Plan p = planner.plan(observed(30, 10, {0, 2, 2}));
  EXPECT_EQ(p.replicas.agg, 0);
  EXPECT_EQ(p.replicas.prefill, static_cast<int>(std::ceil(30 / prefill - 1e-9)));
  EXPECT_EQ(p.replicas.decode, static_cast<int>(std::ceil(30 / decode - 1e-9)));
  EXPECT_GE(p.replicas.prefill, 1);
  EXPECT_GE(p.replicas.decode, 1);
}

TEST(SlaPlannerTest, ScaleDownWaitsForTheDelayScaleUpDoesNot) {
  PlannerOptions o = aggOptions();
  o.scale_down_delay = 3;
  SlaPlanner planner(o);
  const int high = planner.plan(observed(40, 10, {1, 0, 0})).replicas.agg;
  ASSERT_GT(high, 2);
  EXPECT_EQ(planner.plan(observed(1, 10, {high, 0, 0})).replicas.agg, high);  // 1 low plan
  EXPECT_EQ(planner.plan(observed(1, 10, {high, 0, 0})).replicas.agg, high);  // 2
  const Plan third = planner.plan(observed(1, 10, {high, 0, 0}));
  EXPECT_EQ(third.replicas.agg, third.raw.agg);  // 3 low plans in a row: down
  EXPECT_LT(third.replicas.agg, high);
  EXPECT_EQ(planner.plan(observed(40, 10, {1, 0, 0})).replicas.agg, high);  // up at once
}

// A queue at the interval's end is demand too: the plan clears it within the next interval, and
// its latencies (queueing) do not move the correction factors.
TEST(SlaPlannerTest, ABacklogAddsToTheDemand) {
  PlannerOptions o = aggOptions();
  o.correction = true;
  const double per_worker = maxRatePerWorker(o.profile, WorkerRole::kAgg, {2000, 200, 0}, o.targets, o.max_utilization);
  SlaPlanner planner(o);
  Observation ob = observed(5, 10, {1, 0, 0});
  ob.waiting = 200;  // 20 req/s more for one interval
  ob.mean_ttft_ms = 20000;
  ob.mean_itl_ms = 300;
  const Plan p = planner.plan(ob);
  EXPECT_NEAR(p.backlog_rate, 20, 1e-9);
  EXPECT_EQ(p.replicas.agg, static_cast<int>(std::ceil(25 / per_worker - 1e-9)));
  EXPECT_GT(p.replicas.agg, static_cast<int>(std::ceil(5 / per_worker - 1e-9)));
  EXPECT_DOUBLE_EQ(p.ttft_correction, 1.0);
  EXPECT_DOUBLE_EQ(p.itl_correction, 1.0);
}

TEST(SlaPlannerTest, TheBudgetCapsThePlan) {
  PlannerOptions o = aggOptions();
  o.max_workers = 4;
  SlaPlanner agg(o);
  const Plan p = agg.plan(observed(500, 10, {4, 0, 0}));
  EXPECT_EQ(p.replicas.agg, 4);
  EXPECT_FALSE(p.feasible);
  o.mode = FleetMode::kDisagg;
  o.max_workers = 6;
  SlaPlanner disagg(o);
  const Plan d = disagg.plan(observed(500, 10, {0, 3, 3}));
  EXPECT_EQ(d.replicas.total(), 6);
  EXPECT_GE(d.replicas.prefill, 1);
  EXPECT_GE(d.replicas.decode, 1);
  EXPECT_FALSE(d.feasible);
  // Out of reach on any budget: a TTFT below the prompt's own compute time.
  o.mode = FleetMode::kAgg;
  o.targets.ttft_ms = 1;
  SlaPlanner tight(o);
  const Plan t = tight.plan(observed(1, 10, {1, 0, 0}));
  EXPECT_FALSE(t.feasible);
  EXPECT_EQ(t.replicas.agg, o.max_workers);
  EXPECT_NE(t.summary().find("out of reach"), std::string::npos);
}

// Latency above the model's estimate at the observed load makes the planner ask for more workers;
// below it, for fewer. Too few requests leave the factors alone.
TEST(SlaPlannerTest, ObservedLatencyCorrectsTheModel) {
  PlannerOptions o = aggOptions();
  o.correction = true;
  const Workload w{2000, 200, 0};
  const double rate = 20, interval = 10;
  const int serving = 4;
  const auto e = estimateWorker(o.profile, WorkerRole::kAgg, w, rate / serving);
  auto run = [&](double factor, double requests_scale) {
    SlaPlanner planner(o);
    Plan p;
    for (int i = 0; i < 6; ++i) {
      Observation ob = observed(rate * requests_scale, interval, {serving, 0, 0});
      ob.mean_ttft_ms = factor * e.ttft_ms;
      ob.mean_itl_ms = factor * e.itl_ms;
      p = planner.plan(ob);
    }
    return p;
  };
  const Plan exact = run(1.0, 1.0);
  EXPECT_NEAR(exact.ttft_correction, 1.0, 1e-9);
  EXPECT_NEAR(exact.itl_correction, 1.0, 1e-9);
  const Plan slow = run(2.0, 1.0);
  EXPECT_NEAR(slow.itl_correction, 2.0, 0.05);  // smoothed towards the observed ratio
  EXPECT_GT(slow.replicas.agg, exact.replicas.agg);
  EXPECT_LT(slow.max_rate_agg, exact.max_rate_agg);
  const Plan fast = run(0.5, 1.0);
  EXPECT_LE(fast.replicas.agg, exact.replicas.agg);
  EXPECT_GT(fast.max_rate_agg, exact.max_rate_agg);
  EXPECT_NEAR(fast.ttft_correction, 0.5, 0.05);
  // 0.3 requests an interval (< min_requests_for_update): the factors stay at 1.
  const Plan sparse = run(3.0, 0.01);
  EXPECT_DOUBLE_EQ(sparse.ttft_correction, 1.0);
  EXPECT_DOUBLE_EQ(sparse.itl_correction, 1.0);
}

TEST(SlaPlannerTest, OptionsAreChecked) {
  EXPECT_TRUE(validatePlannerOptions(aggOptions()).isOk());
  auto bad = [](auto mutate) {
    PlannerOptions o = aggOptions();
    mutate(o);
    return validatePlannerOptions(o);
  };
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.targets.ttft_ms = 0; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.targets.itl_ms = -1; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.targets.itl_ms = std::nan(""); }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.min_workers = 0; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.max_workers = 0; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.mode = FleetMode::kDisagg; o.min_workers = 2; o.max_workers = 3; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.max_utilization = 1; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.scale_down_delay = 0; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.predictor.window = 0; }).isOk());
  EXPECT_FALSE(bad([](PlannerOptions& o) { o.profile.speedup = 0; }).isOk());
  EXPECT_EQ(*parseFleetMode("disagg"), FleetMode::kDisagg);
  EXPECT_EQ(fleetModeName(*parseFleetMode("agg")), "agg");
  EXPECT_FALSE(parseFleetMode("both").isOk());
}

// Poisson arrivals whose rate goes linearly from one value to the next over each segment
// (seconds, rate at its start, rate at its end), by thinning; distinct 4-block prompts.
struct Segment {
  double seconds, from, to;
};
std::vector<mocker::TraceRequest> rampTrace(const std::vector<Segment>& segments, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<mocker::TraceRequest> out;
  int64_t next_id = 0;
  double start = 0;
  for (const Segment& sg : segments) {
    const double peak = std::max(sg.from, sg.to);
    std::exponential_distribution<double> gap(peak);
    for (double t = start + gap(rng); t < start + sg.seconds; t += gap(rng)) {
      const double rate = sg.from + (sg.to - sg.from) * (t - start) / sg.seconds;
      if (unit(rng) * peak > rate) continue;
      mocker::TraceRequest r;
      r.timestamp_ms = t * 1000.0;
      for (int b = 0; b < 4; ++b) r.hash_ids.push_back(next_id++);
      r.input_length = 4 * 512 - 100;
      r.output_length = 200;
      out.push_back(r);
    }
    start += sg.seconds;
  }
  return out;
}

// `workers` agg workers, or (po.mode disagg) `workers` decode and `prefill` prefill workers.
mocker::SimulationReport simulateWith(const std::vector<mocker::TraceRequest>& trace, int32_t workers,
                                      const PlannerOptions& po, SlaPlanner* planner, int32_t prefill = 0) {
  mocker::SimulationOptions o;
  o.workers = workers;
  o.prefill_workers = prefill;
  o.kv_blocks_per_worker = 4096;
  o.profile = po.profile;
  o.slo_ttft_ms = 2 * po.targets.ttft_ms;  // per request; the targets are means
  o.slo_itl_ms = 2 * po.targets.itl_ms;
  mocker::SimulationHooks hooks;
  if (planner != nullptr) {
    hooks.autoscaler.interval_us = 10'000'000;
    hooks.autoscaler.startup_us = 5'000'000;
    hooks.autoscaler.decide = [planner](const mocker::IntervalStats& st) {
      const Replicas r = planner->plan(observationOf(st)).replicas;
      return st.disaggregated ? mocker::FleetSize{r.decode, r.prefill} : mocker::FleetSize{r.agg, 0};
    };
  }
  router::RouterOptions ro;
  ro.policy = "least-loaded";
  auto router = router::makeRouter(ro);
  auto prefill_router = router::makeRouter(ro);
  EXPECT_TRUE(router.isOk() && prefill_router.isOk());
  hooks.prefill_router = prefill_router->get();
  auto rep = mocker::simulate(trace, o, **router, hooks);
  EXPECT_TRUE(rep.isOk()) << rep.status().toString();
  return rep.isOk() ? *rep : mocker::SimulationReport{};
}

// The planner in the loop on a day in miniature: 4 req/s, a ramp to 24, a plateau, a ramp down.
// It plans for mean latencies: the run's means and most intervals' must be within the targets, and
// nearly every request within twice them, at a cost well below a fleet sized for the peak; a
// fleet sized for the quiet start falls far behind. (A 6x step within one interval is another
// matter: the requests of the interval or two it takes to see it and start workers wait.)
TEST(SlaPlannerTest, InTheLoopItFollowsTheLoad) {
  const auto trace = rampTrace({{60, 4, 4}, {120, 4, 24}, {120, 24, 24}, {120, 24, 4}, {60, 4, 4}}, 3);
  PlannerOptions po = aggOptions();
  po.correction = true;
  po.scale_down_delay = 2;
  po.predictor.kind = PredictorKind::kHolt;
  SlaPlanner planner(po);
  const auto planned = simulateWith(trace, 1, po, &planner);
  int32_t peak = 0, intervals = 0, within = 0;
  for (const auto& tp : planned.timeline) {
    peak = std::max(peak, tp.serving);
    if (std::isnan(tp.mean_ttft_ms)) continue;
    ++intervals;
    within += tp.mean_ttft_ms <= po.targets.ttft_ms && tp.mean_itl_ms <= po.targets.itl_ms ? 1 : 0;
  }
  const auto at_peak = simulateWith(trace, peak, po, nullptr);
  const auto at_low = simulateWith(trace, planned.timeline.front().wanted, po, nullptr);
  EXPECT_EQ(planned.completed, planned.requests);
  EXPECT_LE(planned.ttft_ms.mean, po.targets.ttft_ms);
  EXPECT_LE(planned.itl_ms.mean, po.targets.itl_ms);
  EXPECT_GE(within, 0.85 * intervals) << within << " of " << intervals;
  EXPECT_GE(planned.slo_attainment, 0.95);
  EXPECT_GE(peak, 3);
  EXPECT_EQ(planned.timeline.back().serving, 1);  // back down after the ramp
  EXPECT_LT(planned.worker_seconds, 0.75 * at_peak.worker_seconds);
  EXPECT_GT(at_low.ttft_ms.mean, 10 * po.targets.ttft_ms);
  std::printf("planned: mean TTFT %.0f ms, ITL %.1f ms, %d of %d intervals within, attainment (2x) %.3f, "
              "%.0f worker-s, peak %d | static %d: attainment %.3f, %.0f worker-s\n",
              planned.ttft_ms.mean, planned.itl_ms.mean, within, intervals, planned.slo_attainment,
              planned.worker_seconds, peak, peak, at_peak.slo_attainment, at_peak.worker_seconds);
}

// The same day in miniature on a disaggregated fleet: the planner sizes the prefill and the decode
// pools apart from what the simulated fleet reports for each (every prompt here is prefilled
// remotely, its blocks moved to the decode worker). The run's means stay within the targets, both
// pools grow with the load and shrink back to one worker each, at well below the cost of the
// peak's fleet kept all day.
TEST(SlaPlannerTest, InTheLoopItSizesPrefillAndDecodePools) {
  const auto trace = rampTrace({{60, 4, 4}, {120, 4, 24}, {120, 24, 24}, {120, 24, 4}, {60, 4, 4}}, 3);
  PlannerOptions po = aggOptions();
  po.mode = FleetMode::kDisagg;
  po.correction = true;
  po.scale_down_delay = 2;
  po.predictor.kind = PredictorKind::kHolt;
  SlaPlanner planner(po);
  const auto planned = simulateWith(trace, 1, po, &planner, 1);
  int32_t peak_prefill = 0, peak_decode = 0;
  for (const auto& tp : planned.timeline) {
    peak_prefill = std::max(peak_prefill, tp.prefill_serving);
    peak_decode = std::max(peak_decode, tp.serving);
  }
  const auto at_peak = simulateWith(trace, peak_decode, po, nullptr, peak_prefill);
  EXPECT_EQ(planned.completed, planned.requests);
  EXPECT_EQ(planned.remote_prefills, planned.requests);
  EXPECT_LE(planned.ttft_ms.mean, po.targets.ttft_ms);
  EXPECT_LE(planned.itl_ms.mean, po.targets.itl_ms);
  EXPECT_GE(planned.slo_attainment, 0.9);
  EXPECT_GE(peak_prefill, 2);
  EXPECT_GE(peak_decode, 2);
  EXPECT_EQ(planned.timeline.back().prefill_serving, 1);
  EXPECT_EQ(planned.timeline.back().serving, 1);
  EXPECT_LT(planned.worker_seconds, 0.75 * at_peak.worker_seconds);
  std::printf("planned disagg: mean TTFT %.0f ms, ITL %.1f ms, attainment (2x) %.3f, %.0f worker-s, peak prefill "
              "%d decode %d | static: attainment %.3f, %.0f worker-s\n",
              planned.ttft_ms.mean, planned.itl_ms.mean, planned.slo_attainment, planned.worker_seconds,
              peak_prefill, peak_decode, at_peak.slo_attainment, at_peak.worker_seconds);
}

}  // namespace
}  // namespace turbine::planner
