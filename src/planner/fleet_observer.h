// What a fleet served, as the SLA planner's Observation: a running fleet read from its frontend's
// /metrics (src/frontend/metrics.h): the
// planner process (`turbine planner`) scrapes it once per adjustment interval and turns the
// difference of two scrapes into the SLA planner's Observation.
//   demand      = admitted + refused requests (turbine_requests_{admitted,refused}_total)
//   input       = prompt tokens / admitted;  output = generation tokens / admitted
//   TTFT, ITL   = the histograms' sum / count over the interval
//   waiting     = turbine_num_requests_waiting (the workers' queues, at the scrape)
//   serving     = turbine_fleet_workers / turbine_fleet_prefill_workers of the model (agg or
//                 decode workers / prefill workers; every model when none is named)
// A counter that went down (the frontend restarted) counts from zero. A simulated fleet: the
// simulator's autoscaler interval (observationOf).
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "mocker/simulator.h"
#include "planner/sla_planner.h"

namespace turbine::planner {

struct FrontendSnapshot {
  double admitted = 0, refused = 0;
  double prompt_tokens = 0, generation_tokens = 0;
  double ttft_sum_s = 0, ttft_count = 0;
  double itl_sum_s = 0, itl_count = 0;
  double waiting = 0;
  double workers = 0, prefill_workers = 0;
};

// InvalidArgument for a body that is not Prometheus text; NotFound when a turbine frontend's
// metrics are missing (the URL is not a `turbine frontend`).
Result<FrontendSnapshot> parseFrontendMetrics(std::string_view text, const std::string& model);

// The interval between two scrapes `interval_s` apart; serving counts from `after`.
Observation observationBetween(const FrontendSnapshot& before, const FrontendSnapshot& after,
                               double interval_s, FleetMode mode);

// What the simulator's autoscaler hook saw (an agg fleet; demand = arrivals).
Observation observationOf(const mocker::IntervalStats& interval);

}  // namespace turbine::planner
