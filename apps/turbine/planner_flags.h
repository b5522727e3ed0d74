// The SLA planner's command-line options, shared by `turbine planner` (a real fleet) and
// `turbine simulate --planner sla` (the simulated one), so both plan with the same knobs.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "common/status.h"
#include "planner/sla_planner.h"

namespace turbine::app {

struct PlannerFlags {
  std::string mode = "agg";
  double ttft_ms = 0, itl_ms = 0;  // targets (required where the planner runs)
  int32_t min_workers = 1, max_workers = 16;
  double interval_s = 60;           // adjustment interval
  std::string predictor = "constant";
  int32_t scale_down_delay = 2;
  double max_utilization = planner::PlannerOptions{}.max_utilization;
  bool no_correction = false;
};

// Registers --ttft-ms, --itl-ms, --min-workers, --max-workers, --adjustment-interval, --predictor,
// --scale-down-delay, --max-utilization, --no-correction and, with_mode, --mode agg|disagg.
void addPlannerFlags(CLI::App* cmd, PlannerFlags& flags, bool with_mode);

// The planner's options from the flags and the workers' timing profile; InvalidArgument naming
// the flag.
Result<planner::PlannerOptions> plannerOptions(const PlannerFlags& flags,
                                               const mocker::TimingProfile& profile);

}  // namespace turbine::app
