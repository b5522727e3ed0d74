#include "planner/sla_planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace turbine::planner {

namespace {

constexpr double kMinCorrection = 0.2, kMaxCorrection = 5.0;

// Fits a disaggregated plan into `budget` workers, in proportion, each role keeping `floor`.
void fitBudget(Replicas& r, int32_t budget, int32_t floor) {
  if (r.total() <= budget) return;
  if (r.agg > 0) {
    r.agg = std::max(std::min(r.agg, budget), floor);
    return;
  }
  const double share = static_cast<double>(r.prefill) / static_cast<double>(r.total());
  r.prefill = std::clamp(static_cast<int32_t>(std::lround(share * budget)), floor,
                         std::max(budget - floor, floor));
  r.decode = std::max(budget - r.prefill, floor);
}

}  // namespace

Result<FleetMode> parseFleetMode(std::string_view name) {
  if (name == "agg") return FleetMode::kAgg;
  if (name == "disagg") return FleetMode::kDisagg;
  return invalidArgument("unknown fleet mode '" + std::string(name) + "' (agg or disagg)");
}

std::string_view fleetModeName(FleetMode mode) { return mode == FleetMode::kAgg ? "agg" : "disagg"; }

Status validatePlannerOptions(const PlannerOptions& o) {
  if (!(o.targets.ttft_ms > 0) || !std::isfinite(o.targets.ttft_ms)) return invalidArgument("ttft target must be > 0 ms");
  if (!(o.targets.itl_ms > 0) || !std::isfinite(o.targets.itl_ms)) return invalidArgument("itl target must be > 0 ms");
  // No scaling to zero: a fleet without workers serves nothing, so it would observe no load.
  if (o.min_workers < 1) return invalidArgument("min workers must be >= 1");
  const int32_t roles = o.mode == FleetMode::kAgg ? 1 : 2;
  if (o.max_workers < o.min_workers * roles) {
    return invalidArgument(fmt::format("max workers must be >= {} ({} role(s) x min workers)",
                                       o.min_workers * roles, roles));
  }
  if (!(o.max_utilization > 0 && o.max_utilization < 1)) return invalidArgument("max utilization must be in (0, 1)");
  if (o.scale_down_delay < 1) return invalidArgument("scale-down delay must be >= 1 interval");
  if (o.min_requests_for_update < 1) return invalidArgument("min requests for update must be >= 1");
  TURBINE_RETURN_IF_ERROR(validatePredictorOptions(o.predictor));
  return mocker::validateTimingProfile(o.profile);
}

std::string Plan::summary() const {
  const std::string counts = replicas.agg > 0 || (replicas.prefill == 0 && replicas.decode == 0)
                                 ? fmt::format("agg {}", replicas.agg)
                                 : fmt::format("prefill {} decode {}", replicas.prefill, replicas.decode);
  return fmt::format(
      "plan: {} (raw {}) | predicted {:.3f} req/s + backlog {:.3f}, input {:.0f}, output {:.0f}, cached {:.2f} | "
      "per worker: agg {:.3f} prefill {:.3f} decode {:.3f} req/s | correction ttft {:.2f} itl {:.2f}{}",
      counts, raw.total(), predicted_rate, backlog_rate, predicted.input_tokens, predicted.output_tokens,
      predicted.cached_fraction, max_rate_agg, max_rate_prefill, max_rate_decode, ttft_correction,
      itl_correction, feasible ? "" : " | targets out of reach");
}

SlaPlanner::SlaPlanner(const PlannerOptions& options)
    : options_(options),
      rate_(options.predictor),
      input_(options.predictor),
      output_(options.predictor),
      cached_(options.predictor) {}

void SlaPlanner::updateCorrection(const Observation& o) {
  if (!options_.correction || o.requests < options_.min_requests_for_update) return;
  if (o.waiting > o.serving.total()) return;  // a queue: latency is waiting, not model error
  const Workload seen{o.mean_input_tokens, o.mean_output_tokens, std::clamp(o.cached_fraction, 0.0, 0.99)};
  const double rate = o.requests / o.interval_s;
  auto blend = [](double& factor, double observed, double expected) {
    if (!std::isfinite(observed) || !std::isfinite(expected) || expected <= 0) return;
    factor = std::clamp(0.5 * factor + 0.5 * (observed / expected), kMinCorrection, kMaxCorrection);
  };
  const mocker::TimingProfile& p = options_.profile;
  if (options_.mode == FleetMode::kAgg) {
    if (o.serving.agg < 1) return;
    const WorkerEstimate e = estimateWorker(p, WorkerRole::kAgg, seen, rate / o.serving.agg);
    if (!e.stable) return;
    blend(ttft_correction_, o.mean_ttft_ms, e.ttft_ms);
    blend(itl_correction_, o.mean_itl_ms, e.itl_ms);
    return;
  }
  if (o.serving.prefill < 1 || o.serving.decode < 1) return;
  const WorkerEstimate pe = estimateWorker(p, WorkerRole::kPrefill, seen, rate / o.serving.prefill);
  const WorkerEstimate de = estimateWorker(p, WorkerRole::kDecode, seen, rate / o.serving.decode);
  if (pe.stable && de.stable) blend(ttft_correction_, o.mean_ttft_ms, pe.ttft_ms + de.ttft_ms);
  if (de.stable) blend(itl_correction_, o.mean_itl_ms, de.itl_ms);
}

int32_t SlaPlanner::replicasFor(double rate, double max_rate) const {
  const int32_t floor = options_.min_workers;
  if (!(rate > 0)) return floor;
  if (!(max_rate > 0)) return options_.max_workers;
  if (!std::isfinite(max_rate)) return std::max(floor, 1);
  const double n = std::ceil(rate / max_rate - 1e-9);
  return std::max(floor, static_cast<int32_t>(std::min(n, static_cast<double>(options_.max_workers))));
}

Plan SlaPlanner::plan(const Observation& o) {
  updateCorrection(o);
  if (o.interval_s > 0) rate_.observe(o.requests / o.interval_s);
  // A handful of requests says little about the lengths, but beats knowing nothing.
  if (o.requests >= options_.min_requests_for_update || (o.requests > 0 && input_.observations() == 0)) {
    input_.observe(o.mean_input_tokens);
    output_.observe(o.mean_output_tokens);
    cached_.observe(o.cached_fraction);
  }
  Plan plan;
  plan.predicted_rate = rate_.predict().value_or(0);
  plan.backlog_rate = o.interval_s > 0 ? std::max(o.waiting, 0.0) / o.interval_s : 0;
  const double demand = plan.predicted_rate + plan.backlog_rate;
  plan.predicted = {input_.predict().value_or(0), output_.predict().value_or(0),
                    std::clamp(cached_.predict().value_or(0), 0.0, 0.99)};
  plan.ttft_correction = ttft_correction_;
  plan.itl_correction = itl_correction_;
  const LatencyTargets t{options_.targets.ttft_ms / ttft_correction_, options_.targets.itl_ms / itl_correction_};
  const mocker::TimingProfile& p = options_.profile;
  const double u = options_.max_utilization;
  if (options_.mode == FleetMode::kAgg) {
    plan.max_rate_agg = maxRatePerWorker(p, WorkerRole::kAgg, plan.predicted, t, u);
    plan.raw.agg = replicasFor(demand, plan.max_rate_agg);
    plan.feasible = plan.max_rate_agg > 0 && demand <= plan.max_rate_agg * options_.max_workers;
  } else {
    plan.max_rate_prefill = maxRatePerWorker(p, WorkerRole::kPrefill, plan.predicted, t, u);
    plan.max_rate_decode = maxRatePerWorker(p, WorkerRole::kDecode, plan.predicted, t, u);
    plan.raw.prefill = replicasFor(demand, plan.max_rate_prefill);
    plan.raw.decode = replicasFor(demand, plan.max_rate_decode);
    plan.feasible = plan.max_rate_prefill > 0 && plan.max_rate_decode > 0 &&
                    plan.raw.total() <= options_.max_workers;
  }
  fitBudget(plan.raw, options_.max_workers, options_.min_workers);
  recent_.push_back(plan.raw);
  while (static_cast<int32_t>(recent_.size()) > options_.scale_down_delay) recent_.pop_front();
  for (const Replicas& r : recent_) {
    plan.replicas.agg = std::max(plan.replicas.agg, r.agg);
    plan.replicas.prefill = std::max(plan.replicas.prefill, r.prefill);
    plan.replicas.decode = std::max(plan.replicas.decode, r.decode);
  }
  fitBudget(plan.replicas, options_.max_workers, options_.min_workers);
  return plan;
}

}  // namespace turbine::planner
