// SlaPlanner: once per adjustment interval, from what the fleet served in the last interval
// (request count, mean input / output lengths, mean TTFT / ITL), predicts the next interval's load
// (load_predictor.h) and returns how many workers of each role meet the latency targets at the
// least cost (capacity_model.h):
//
//   agg fleet:    agg     = ceil(predicted rate / maxRatePerWorker(agg,     targets'))
//   disagg fleet: prefill = ceil(predicted rate / maxRatePerWorker(prefill, targets'))
//                 decode  = ceil(predicted rate / maxRatePerWorker(decode,  targets'))
//
// (the predicted rate plus the backlog, waiting / interval, so a queue is cleared in one interval)
// each clamped to [min_workers, ...] and the total to max_workers (a disaggregated plan over the
// budget is scaled down in proportion). targets' are the targets divided by the correction
// factors: observed latency / the model's estimate at the observed per-worker rate (smoothed,
// clamped to [0.2, 5]), so a model that is optimistic by 30% asks for 30% tighter targets.
// Scaling up is immediate; scaling down waits until `scale_down_delay` consecutive plans agree
// (the applied count is the largest of the last scale_down_delay raw plans), so one quiet interval
// does not give back capacity that the next one needs.
// Thread safety: not thread-safe; one owner calls plan().
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <string_view>

#include "common/status.h"
#include "mocker/timing_model.h"
#include "planner/capacity_model.h"
#include "planner/load_predictor.h"

namespace turbine::planner {

enum class FleetMode { kAgg, kDisagg };
Result<FleetMode> parseFleetMode(std::string_view name);  // "agg" | "disagg"
std::string_view fleetModeName(FleetMode mode);

struct Replicas {
  int32_t agg = 0;
  int32_t prefill = 0;
  int32_t decode = 0;
  int32_t total() const { return agg + prefill + decode; }
  int32_t& of(WorkerRole role) { return role == WorkerRole::kAgg ? agg : role == WorkerRole::kPrefill ? prefill : decode; }
  int32_t of(WorkerRole role) const { return const_cast<Replicas*>(this)->of(role); }
  bool operator==(const Replicas&) const = default;
};

struct PlannerOptions {
  FleetMode mode = FleetMode::kAgg;
  LatencyTargets targets{1000.0, 50.0};  // mean TTFT and ITL (ms), both > 0
  mocker::TimingProfile profile;          // the workers' timing model
  PredictorOptions predictor;             // for the rate and the mean lengths
  int32_t min_workers = 1;                // per role in the fleet's mode (>= 1)
  int32_t max_workers = 16;               // all roles together (>= the minimums)
  double max_utilization = 0.9;           // of a worker's time, (0, 1)
  int32_t scale_down_delay = 2;           // plans (>= 1; 1 = scale down at once)
  bool correction = true;                 // correct the model by observed latency
  // Intervals with fewer requests leave the predicted lengths and the correction factors as
  // they were (the request rate is always observed).
  int32_t min_requests_for_update = 5;
};
Status validatePlannerOptions(const PlannerOptions& options);  // InvalidArgument naming the field

inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

// What the fleet served in the interval that just ended.
struct Observation {
  double interval_s = 0;          // > 0
  // Requests that arrived in the interval: the demand. (Completions understate it when the fleet
  // is overloaded, just when it matters.)
  double requests = 0;
  double mean_input_tokens = 0;   // of the requests completed in it (ignored when requests == 0)
  double mean_output_tokens = 0;
  double cached_fraction = 0;     // prompt tokens found in prefix caches / prompt tokens
  double mean_ttft_ms = kNotMeasured;
  double mean_itl_ms = kNotMeasured;
  // Requests queued (not yet started) at the interval's end: a backlog the next interval must
  // also clear. While there is one, the latencies measure the queue, not the model's error, so
  // the correction factors are left alone.
  double waiting = 0;
  Replicas serving;               // workers that served during the interval
};

struct Plan {
  Replicas replicas;              // what to run next
  Replicas raw;                   // before the scale-down delay
  double predicted_rate = 0;      // requests/s
  double backlog_rate = 0;        // waiting / interval: added to the predicted rate
  Workload predicted;
  double max_rate_agg = 0, max_rate_prefill = 0, max_rate_decode = 0;  // per worker, corrected
  double ttft_correction = 1, itl_correction = 1;
  bool feasible = true;           // false: even one worker cannot meet the targets, or the budget
                                  // is below what the predicted load needs
  std::string summary() const;    // one line for the log
};

class SlaPlanner {
 public:
  explicit SlaPlanner(const PlannerOptions& options);  // options already validated

  Plan plan(const Observation& observation);
  const PlannerOptions& options() const { return options_; }

 private:
  void updateCorrection(const Observation& o);
  int32_t replicasFor(double rate, double max_rate) const;

  PlannerOptions options_;
  LoadPredictor rate_, input_, output_, cached_;
  double ttft_correction_ = 1, itl_correction_ = 1;
  std::deque<Replicas> recent_;  // the last scale_down_delay raw plans
};

}  // namespace turbine::planner
