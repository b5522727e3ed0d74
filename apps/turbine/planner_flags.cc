#include "planner_flags.h"

#include <cmath>

namespace turbine::app {

void addPlannerFlags(CLI::App* cmd, PlannerFlags& f, bool with_mode) {
  if (with_mode) {
    cmd->add_option("--mode", f.mode, "Fleet to plan: agg (one role) or disagg (prefill + decode workers)")
        ->check(CLI::IsMember({"agg", "disagg"}))->capture_default_str();
  }
  cmd->add_option("--ttft-ms", f.ttft_ms, "Target mean time to first token (ms)")->check(CLI::PositiveNumber);
  cmd->add_option("--itl-ms", f.itl_ms, "Target mean inter-token latency (ms)")->check(CLI::PositiveNumber);
  cmd->add_option("--min-workers", f.min_workers, "Fewest workers per role")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--max-workers", f.max_workers, "Most workers, all roles together (the budget)")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--adjustment-interval", f.interval_s, "Seconds between plans")
      ->check(CLI::Range(0.01, 86400.0))->capture_default_str();
  cmd->add_option("--predictor", f.predictor, "Load predictor: constant | moving-average | holt")
      ->check(CLI::IsMember({"constant", "moving-average", "holt"}))->capture_default_str();
  cmd->add_option("--scale-down-delay", f.scale_down_delay,
                  "Plans in a row that must agree before workers are removed (1: at once)")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--max-utilization", f.max_utilization, "Busiest a worker may be planned, (0, 1)")
      ->check(CLI::Range(0.01, 0.99))->capture_default_str();
  cmd->add_flag("--no-correction", f.no_correction,
                "Trust the timing profile: do not correct it by the latency observed");
}

Result<planner::PlannerOptions> plannerOptions(const PlannerFlags& f, const mocker::TimingProfile& profile) {
  if (!(f.ttft_ms > 0) || !(f.itl_ms > 0)) return invalidArgument("the planner needs --ttft-ms and --itl-ms");
  planner::PlannerOptions o;
  TURBINE_ASSIGN_OR_RETURN(o.mode, planner::parseFleetMode(f.mode));
  o.targets = {f.ttft_ms, f.itl_ms};
  o.profile = profile;
  TURBINE_ASSIGN_OR_RETURN(o.predictor.kind, planner::parsePredictorKind(f.predictor));
  o.min_workers = f.min_workers;
  o.max_workers = f.max_workers;
  o.scale_down_delay = f.scale_down_delay;
  o.max_utilization = f.max_utilization;
  o.correction = !f.no_correction;
  Status st = planner::validatePlannerOptions(o);
  if (!st) return invalidArgument("planner: " + st.message());
  return o;
}

}  // namespace turbine::app
