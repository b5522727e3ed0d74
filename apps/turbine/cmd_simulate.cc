// turbine simulate: replays a Mooncake or Azure trace against N mock workers behind one router,
// in virtual time (src/mocker/simulator.h), and reports latency, throughput and prefix hit ratio
// next to the pooled-oracle and infinite-cache bounds; with --planner sla, the SLA planner
// (src/planner) sizes the fleet every adjustment interval, and the report adds its cost.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "commands.h"
#include "mocker/simulator.h"
#include "planner/fleet_observer.h"
#include "planner_flags.h"
#include "router/kv_router.h"
#include "router/router.h"

namespace turbine::app {
namespace {

struct SimulateFlags {
  std::string trace, router = "kv", profile, out;
  int32_t workers = 16, kv_blocks = 1024, block_size = 512, host_blocks = 0;
  int32_t prefill_workers = 0, max_local_prefill_tokens = 512;  // disaggregated fleets
  size_t max_requests = 0;
  double time_scale = 1.0, rate_scale = 1.0, temperature = 0.0;
  // The kv cost's defaults are the router's (turbine frontend / serve use the same).
  double overlap_weight = router::RouterOptions{}.overlap_weight;
  double queued_prefill_weight = router::RouterOptions{}.queued_prefill_weight;
  double busy_kv_fraction = 0.0;
  int64_t busy_prefill_tokens = 0;
  bool no_kv_events = false;
  bool whole_block_prompts = false;
  uint64_t seed = 0;
  std::string planner = "none";
  double startup_s = 30;
  double slo_ttft_ms = 0, slo_itl_ms = 0;  // per request; default: the planner's targets
  PlannerFlags plan;
};

nlohmann::json percentilesJson(const mocker::Percentiles& p) {
  return {{"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"mean", p.mean}};
}

nlohmann::json reportJson(const SimulateFlags& f, const mocker::SimulationReport& r,
                          const router::KvRouterStats* kv) {
  nlohmann::json j = {
      {"router", f.router}, {"workers", f.workers}, {"kv_blocks_per_worker", f.kv_blocks},
      {"host_blocks_per_worker", f.host_blocks}, {"prefill_workers", f.prefill_workers},
      {"block_size", f.block_size}, {"rate_scale", f.rate_scale}, {"time_scale", f.time_scale},
      {"whole_block_prompts", f.whole_block_prompts},
      {"requests", r.requests}, {"completed", r.completed}, {"failed", r.failed},
      {"makespan_s", r.makespan_s}, {"prefix_hit_ratio", r.prefix_hit_ratio},
      {"pooled_oracle_hit_ratio", r.pooled_oracle_hit_ratio},
      {"pooled_optimal_hit_ratio", r.pooled_optimal_hit_ratio},
      {"infinite_cache_hit_ratio", r.infinite_cache_hit_ratio},
      {"ttft_ms", percentilesJson(r.ttft_ms)}, {"itl_ms", percentilesJson(r.itl_ms)},
      {"e2e_ms", percentilesJson(r.e2e_ms)}, {"ttft_alone_ms", percentilesJson(r.ttft_alone_ms)},
      {"ttft_wait_ms", percentilesJson(r.ttft_wait_ms)}, {"output_tokens", r.output_tokens},
      {"output_tokens_per_s", r.output_tokens_per_s}, {"input_tokens_per_s", r.input_tokens_per_s},
      {"preemptions", r.preemptions}, {"wall_s", r.wall_s},
      {"worker_seconds", r.worker_seconds}, {"peak_workers", r.peak_workers}};
  if (f.prefill_workers > 0) {
    j["disaggregation"] = {{"max_local_prefill_tokens", f.max_local_prefill_tokens},
                           {"remote_prefills", r.remote_prefills},
                           {"prefill_fallbacks", r.prefill_fallbacks},
                           {"transferred_blocks", r.transferred_blocks}};
  }
  if (r.slo_attainment >= 0) {
    j["slo"] = {{"ttft_ms", f.slo_ttft_ms}, {"itl_ms", f.slo_itl_ms}, {"attainment", r.slo_attainment}};
  }
  if (f.planner != "none") {
    j["planner"] = {{"policy", f.planner}, {"mode", f.plan.mode}, {"ttft_ms", f.plan.ttft_ms}, {"itl_ms", f.plan.itl_ms},
                    {"adjustment_interval_s", f.plan.interval_s}, {"worker_startup_s", f.startup_s},
                    {"predictor", f.plan.predictor}, {"min_workers", f.plan.min_workers},
                    {"max_workers", f.plan.max_workers}};
    auto& t = j["timeline"] = nlohmann::json::array();
    auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
    for (const auto& p : r.timeline) {
      nlohmann::json point = {{"t_s", p.t_s}, {"serving", p.serving}, {"starting", p.starting},
                               {"draining", p.draining}, {"wanted", p.wanted}, {"arrivals_per_s", p.arrivals_per_s},
                               {"mean_ttft_ms", num(p.mean_ttft_ms)}, {"mean_itl_ms", num(p.mean_itl_ms)}};
      if (f.prefill_workers > 0) {
        point["prefill_serving"] = p.prefill_serving;
        point["prefill_wanted"] = p.prefill_wanted;
      }
      t.push_back(std::move(point));
    }
  }
  auto& w = j["per_worker"] = nlohmann::json::array();
  for (const auto& x : r.workers) {
    w.push_back({{"worker", x.worker_id}, {"role", x.role}, {"requests", x.requests}, {"prompt_blocks", x.prompt_blocks},
                 {"cached_blocks", x.cached_blocks}, {"busy_fraction", x.busy_fraction},
                 {"start_s", x.start_s}, {"end_s", x.end_s}});
  }
  if (kv != nullptr) {
    j["kv_router"] = {{"events_applied", kv->events_applied}, {"blocks_applied", kv->blocks_applied},
                      {"index_hashes", kv->index_hashes}, {"index_entries", kv->index_entries},
                      {"index_bytes", kv->index_bytes},
                      {"predicted_cached_tokens", kv->predicted_cached_tokens},
                      {"actual_cached_tokens", kv->actual_cached_tokens},
                      {"abs_error_tokens", kv->abs_error_tokens},
                      {"decision_p50_ns", kv->decision_latency.quantileNs(0.5)},
                      {"decision_p99_ns", kv->decision_latency.quantileNs(0.99)}};
  }
  return j;
}

void printSummary(const mocker::SimulationReport& r, const std::string& policy) {
  std::printf("router %s: %lld requests (%lld completed, %lld failed), makespan %.1f s, wall %.1f s\n",
              policy.c_str(), static_cast<long long>(r.requests), static_cast<long long>(r.completed),
              static_cast<long long>(r.failed), r.makespan_s, r.wall_s);
  std::printf("prefix hit ratio %.4f (pooled LRU oracle %.4f, pooled optimal %.4f, infinite cache %.4f)\n",
              r.prefix_hit_ratio, r.pooled_oracle_hit_ratio, r.pooled_optimal_hit_ratio,
              r.infinite_cache_hit_ratio);
  std::printf("TTFT ms p50 %.1f p90 %.1f p99 %.1f | ITL ms p50 %.2f p99 %.2f | e2e ms p50 %.0f p99 %.0f\n",
              r.ttft_ms.p50, r.ttft_ms.p90, r.ttft_ms.p99, r.itl_ms.p50, r.itl_ms.p99, r.e2e_ms.p50,
              r.e2e_ms.p99);
  std::printf("TTFT split: alone on an idle worker ms p50 %.1f p99 %.1f | waiting ms p50 %.1f p99 %.1f\n",
              r.ttft_alone_ms.p50, r.ttft_alone_ms.p99, r.ttft_wait_ms.p50, r.ttft_wait_ms.p99);
  std::printf("output %.1f tokens/s, input %.1f tokens/s, preemptions %lld\n", r.output_tokens_per_s,
              r.input_tokens_per_s, static_cast<long long>(r.preemptions));
  double lo = 1, hi = 0;
  for (const auto& w : r.workers) {
    lo = std::min(lo, w.busy_fraction);
    hi = std::max(hi, w.busy_fraction);
  }
  std::printf("per-worker busy fraction min %.3f max %.3f\n", lo, hi);
  if (r.remote_prefills > 0 || r.prefill_fallbacks > 0) {
    std::printf("disaggregated: %lld remote prefills, %lld prefilled by their decode worker (no prefill "
                "worker), %lld blocks transferred\n",
                static_cast<long long>(r.remote_prefills), static_cast<long long>(r.prefill_fallbacks),
                static_cast<long long>(r.transferred_blocks));
  }
  std::printf("cost %.0f worker-seconds (%.2f worker-hours), peak %d workers", r.worker_seconds,
              r.worker_seconds / 3600, r.peak_workers);
  if (r.slo_attainment >= 0) std::printf(", SLO attainment %.4f", r.slo_attainment);
  std::printf("\n");
}

Status runSimulate(const SimulateFlags& f) {
  mocker::SimulationOptions o;
  o.workers = f.workers;
  o.kv_blocks_per_worker = f.kv_blocks;
  o.host_blocks_per_worker = f.host_blocks;
  o.block_size = f.block_size;
  o.rate_scale = f.rate_scale;
  o.whole_block_prompts = f.whole_block_prompts;
  if (!f.profile.empty()) {
    TURBINE_ASSIGN_OR_RETURN(o.profile, mocker::loadTimingProfile(f.profile));
  }
  o.profile.speedup *= f.time_scale;
  o.slo_ttft_ms = f.slo_ttft_ms;
  o.slo_itl_ms = f.slo_itl_ms;
  o.prefill_workers = f.prefill_workers;
  o.max_local_prefill_tokens = f.max_local_prefill_tokens;
  TURBINE_RETURN_IF_ERROR(mocker::validateSimulationOptions(o));
  TURBINE_ASSIGN_OR_RETURN(auto trace, bench::readTrace(f.trace));
  if (trace.empty()) return invalidArgument(f.trace + ": the trace has no requests");
  if (f.max_requests > 0 && trace.size() > f.max_requests) trace.resize(f.max_requests);
  mocker::giveDistinctBlocks(trace, f.block_size);

  int64_t now_us = 0;
  mocker::SimulationHooks hooks;
  hooks.virtual_now_us = &now_us;
  std::unique_ptr<planner::SlaPlanner> sla;
  if (f.planner == "sla") {
    TURBINE_ASSIGN_OR_RETURN(auto po, plannerOptions(f.plan, o.profile));
    if ((po.mode == planner::FleetMode::kDisagg) != (o.prefill_workers > 0)) {
      return invalidArgument(po.mode == planner::FleetMode::kDisagg
                                 ? "--mode disagg plans prefill and decode workers: give --prefill-workers >= 1"
                                 : "--prefill-workers makes a disaggregated fleet: plan it with --mode disagg");
    }
    sla = std::make_unique<planner::SlaPlanner>(po);
    hooks.autoscaler.interval_us = static_cast<int64_t>(std::llround(f.plan.interval_s * 1e6));
    hooks.autoscaler.startup_us = static_cast<int64_t>(std::llround(f.startup_s * 1e6));
    hooks.autoscaler.decide = [sla = sla.get()](const mocker::IntervalStats& st) {
      const planner::Replicas r = sla->plan(planner::observationOf(st)).replicas;
      return st.disaggregated ? mocker::FleetSize{r.decode, r.prefill} : mocker::FleetSize{r.agg, 0};
    };
  }
  // The decode (or agg) workers' router, and in a disaggregated fleet a second one of the same
  // policy for the prefill workers (as turbine frontend has).
  auto makeRouter = [&](router::KvRouter** kv_out) -> Result<std::unique_ptr<router::Router>> {
    router::RouterOptions ro;
    ro.policy = f.router;
    ro.seed = f.seed;
    if (f.router != "kv") return router::makeRouter(ro);
    ro.overlap_weight = f.overlap_weight;
    ro.temperature = f.temperature;
    ro.use_kv_events = !f.no_kv_events;
    ro.queued_prefill_weight = f.queued_prefill_weight;
    TURBINE_RETURN_IF_ERROR(router::makeKvRouter(ro).status());  // validates the knobs
    auto ko = router::KvRouterOptions::from(ro);
    ko.busy_kv_fraction = f.busy_kv_fraction;
    ko.queued_prefill_weight = f.queued_prefill_weight;
    ko.busy_prefill_tokens = f.busy_prefill_tokens;
    ko.now_us = [&now_us] { return now_us; };
    auto owned = std::make_unique<router::KvRouter>(ko);
    *kv_out = owned.get();
    return std::unique_ptr<router::Router>(std::move(owned));
  };
  router::KvRouter* kv = nullptr;
  router::KvRouter* prefill_kv = nullptr;
  TURBINE_ASSIGN_OR_RETURN(auto router, makeRouter(&kv));
  if (kv != nullptr) {
    hooks.on_prefill_done = [kv](const std::string& id) { kv->onPrefillCompleted(id); };
    hooks.on_usage = [kv](const std::string& id, int32_t cached) { kv->onUsage(id, cached); };
  }
  std::unique_ptr<router::Router> prefill_router;
  if (o.prefill_workers > 0) {
    TURBINE_ASSIGN_OR_RETURN(prefill_router, makeRouter(&prefill_kv));
    hooks.prefill_router = prefill_router.get();
  }
  TURBINE_ASSIGN_OR_RETURN(auto report, mocker::simulate(trace, o, *router, hooks));
  printSummary(report, f.router);
  std::optional<router::KvRouterStats> stats;
  if (kv != nullptr) {
    stats = kv->stats();
    std::printf("kv router: predicted cached tokens %lld vs actual %lld (abs error %lld); decision p50 %lld ns p99 %lld ns\n",
                static_cast<long long>(stats->predicted_cached_tokens),
                static_cast<long long>(stats->actual_cached_tokens),
                static_cast<long long>(stats->abs_error_tokens),
                static_cast<long long>(stats->decision_latency.quantileNs(0.5)),
                static_cast<long long>(stats->decision_latency.quantileNs(0.99)));
  }
  if (!f.out.empty()) {
    std::ofstream out(f.out);
    if (!out) return ioError("cannot write '" + f.out + "'");
    out << reportJson(f, report, stats ? &*stats : nullptr).dump(2) << "\n";
    if (!out) return ioError("cannot write '" + f.out + "'");
  }
  return Status::ok();
}

}  // namespace

void addSimulateCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<SimulateFlags>();
  auto* cmd = app.add_subcommand(
      "simulate", "Replay a Mooncake trace against simulated workers behind a router, in virtual time");
  cmd->add_option("--trace", flags->trace,
                  "Mooncake JSONL trace, or Azure CSV (.csv: lengths only, every prompt distinct)")
      ->required();
  cmd->add_option("--workers", flags->workers, "Mock workers")->capture_default_str();
  cmd->add_option("--router", flags->router, "kv | round-robin | random | least-loaded")->capture_default_str();
  cmd->add_option("--prefill-workers", flags->prefill_workers,
                  "Disaggregated serving: this many prefill workers, and --workers decode workers (0: aggregated)")
      ->check(CLI::Range(0, 100000))->capture_default_str();
  cmd->add_option("--max-local-prefill-tokens", flags->max_local_prefill_tokens,
                  "Disaggregated: the longest uncached prompt part a decode worker prefills itself")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--kv-blocks-per-worker", flags->kv_blocks, "KV blocks per worker")->capture_default_str();
  cmd->add_option("--host-blocks-per-worker", flags->host_blocks,
                  "Host KV tier per worker in blocks: evicted blocks come back at the profile's "
                  "onboard_us_per_token instead of being recomputed (0: none)")
      ->capture_default_str();
  cmd->add_option("--block-size", flags->block_size, "Tokens per KV block (the trace's hash_ids block)")
      ->capture_default_str();
  cmd->add_option("--time-scale", flags->time_scale, "Engine speed-up factor (step times divided by it)")
      ->capture_default_str();
  cmd->add_option("--rate-scale", flags->rate_scale, "Arrival rate multiplier")->capture_default_str();
  cmd->add_flag("--whole-block-prompts", flags->whole_block_prompts,
                "Prompts of len(hash_ids) * block size + 1 tokens instead of input_length");
  cmd->add_option("--max-requests", flags->max_requests, "Replay only the first N requests (0: all)");
  cmd->add_option("--profile", flags->profile, "Timing profile JSON (src/mocker/timing_model.h)");
  cmd->add_option("--overlap-weight", flags->overlap_weight, "kv: weight of uncached prompt blocks")
      ->capture_default_str();
  cmd->add_option("--queued-prefill-weight", flags->queued_prefill_weight,
                  "kv: weight of the worker's queued prefill blocks in the cost (0: DESIGN.md §4's formula)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--temperature", flags->temperature, "kv: softmax temperature (0: argmin)")
      ->capture_default_str();
  cmd->add_flag("--no-kv-events", flags->no_kv_events, "kv: approximate mode (learn from own decisions)");
  cmd->add_option("--busy-kv-fraction", flags->busy_kv_fraction, "kv: skip workers with active blocks above this fraction");
  cmd->add_option("--busy-prefill-tokens", flags->busy_prefill_tokens, "kv: skip workers with more queued prefill tokens");
  cmd->add_option("--seed", flags->seed, "Seed for random choices")->capture_default_str();
  cmd->add_option("--out", flags->out, "Write the report as JSON");
  cmd->add_option("--planner", flags->planner,
                  "none: a fixed fleet of --workers; sla: the SLA planner sizes it (--workers to start)")
      ->check(CLI::IsMember({"none", "sla"}))->capture_default_str();
  cmd->add_option("--worker-startup", flags->startup_s, "Seconds from a planner's decision to a new worker's first request")
      ->check(CLI::Range(0.0, 86400.0))->capture_default_str();
  cmd->add_option("--slo-ttft-ms", flags->slo_ttft_ms,
                  "Per-request TTFT limit for the report's SLO attainment (default: --ttft-ms)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--slo-itl-ms", flags->slo_itl_ms,
                  "Per-request mean ITL limit for the report's SLO attainment (default: --itl-ms)")
      ->check(CLI::PositiveNumber);
  addPlannerFlags(cmd, flags->plan, /*with_mode=*/true);
  cmd->callback([flags, &exit_code] {
    if (flags->slo_ttft_ms == 0) flags->slo_ttft_ms = flags->plan.ttft_ms;
    if (flags->slo_itl_ms == 0) flags->slo_itl_ms = flags->plan.itl_ms;
    Status st = runSimulate(*flags);
    exit_code = st ? 0 : reportError("simulate", st);
  });
}

}  // namespace turbine::app
