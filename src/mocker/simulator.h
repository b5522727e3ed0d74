// Discrete-event simulation of a fleet of mock workers behind one router, in virtual time, in
// one process (issue 5 §4, `turbine simulate`). Events: request arrivals (trace timestamps /
// rate_scale), and step completions of each worker's MockEngine. A worker with work runs one
// scheduler step at time t; its outputs, KV events and load metrics reach the router at
// t + step duration, when its next step starts. The router is the real one (router::Router).
//
// Trace requests become token prompts: block j carries hash_ids[j] in its first tokens, so equal
// ids give equal block hashes (DESIGN.md §3.1) and the engine's prefix cache and the router see
// the trace's sharing. Each prompt is input_length tokens when ceil(input_length / block_size)
// == len(hash_ids) (every Mooncake row): its last block is usually partial, so, as in vLLM, it is
// neither cached nor hit (on the Mooncake conversation trace, an infinite cache under that rule
// hits 36.60% of blocks against the 36.64% bound). Other rows, or whole_block_prompts, get len(hash_ids) *
// block_size + 1 tokens (every hash_id a full, cacheable block; prompt lengths then step by a
// whole block, which quantises TTFT percentiles). Each generates output_length tokens (at least
// 1). Hit ratio = cached prompt blocks reported in usage / all hash_ids blocks (the bounds'
// denominator).
//
// Disaggregated fleets (options.prefill_workers > 0): the router chooses among decode workers,
// a second one (hooks.prefill_router) among prefill workers, as turbine frontend does
// (frontend/engine_backend.h): a request whose prompt has more than max_local_prefill_tokens not
// cached on its decode worker first runs a prefill leg (one token, discarded) on a prefill worker;
// the blocks the decode worker lacks are then exported there, move for their tokens times the
// profile's onboard_us_per_token (the transfer), and are imported by the decode leg, which
// computes only the prompt's tail (the import's copy into the pool costs onboard_us_per_token a
// token again, in that step). Without a prefill worker, or after a failed leg, the decode worker
// prefills itself (a fallback). The hit ratio counts a remote request's hits on its prefill
// worker (the blocks it did not compute), not its imported blocks.
// Thread safety: single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "mocker/timing_model.h"
#include "mocker/trace.h"
#include "router/router.h"

namespace turbine::mocker {

struct SimulationOptions {
  int32_t workers = 16;
  int32_t kv_blocks_per_worker = 1024;
  int32_t host_blocks_per_worker = 0;  // a host KV tier below each worker's pool (0: none)
  int32_t block_size = 512;
  double rate_scale = 1.0;  // arrival rate multiplier (timestamps divided by it)
  TimingProfile profile;    // its speedup is the engine's time scale
  int64_t load_interval_us = 100'000;  // load metrics per worker at most this often
  std::string model_id = "mock";
  // Prompts of len(hash_ids) * block_size + 1 tokens instead of input_length (see the top).
  bool whole_block_prompts = false;
  // Service-level objective for the report's slo_attainment (0: that part not counted): a
  // completed request meets it when its TTFT and its mean inter-token latency are within these.
  double slo_ttft_ms = 0;
  double slo_itl_ms = 0;
  // Disaggregated serving (see the top): > 0 makes `workers` decode workers and adds this many
  // prefill workers (hooks.prefill_router then required). 0: an aggregated fleet.
  int32_t prefill_workers = 0;
  // The longest uncached prompt part a decode worker prefills itself (0: every prompt remote).
  int32_t max_local_prefill_tokens = 512;
};

// What the fleet served in one autoscaling interval (virtual time).
struct IntervalStats {
  int64_t t_us = 0;            // the interval's end
  double interval_s = 0;
  int64_t arrivals = 0;
  int64_t completed = 0;
  double mean_input_tokens = 0;   // of the completed requests
  double mean_output_tokens = 0;
  double cached_fraction = 0;     // their cached prompt tokens / prompt tokens
  double mean_ttft_ms = 0;        // NaN when no first token came in the interval
  double mean_itl_ms = 0;         // NaN when no later token came
  int64_t waiting = 0;            // requests queued on the workers (not yet started) at its end
  int32_t serving = 0;            // workers taking requests during the interval's end
  int32_t starting = 0;           // decided but not yet ready
  // Disaggregated fleets: the counts above are the decode workers'; these the prefill workers'.
  bool disaggregated = false;
  int64_t prefill_waiting = 0;    // prefill legs queued on prefill workers
  int32_t prefill_serving = 0;
  int32_t prefill_starting = 0;
};

// How many workers an autoscaler wants: `workers` agg (or decode, in a disaggregated fleet)
// workers, >= 1, and prefill workers (a disaggregated fleet only; 0 leaves every prefill local).
struct FleetSize {
  int32_t workers = 1;
  int32_t prefill_workers = 0;
};

// A planner in the loop: every interval_us of virtual time `decide` sees the interval and returns
// the workers wanted, per pool (agg or decode, and prefill). More: new workers start now and take requests startup_us
// later (loading weights); their cost counts from now. Fewer: workers still starting are
// cancelled first (newest first), then serving workers with the least work are drained: the
// router stops sending them requests, they finish what they hold, and their cost stops when they
// are empty.
struct Autoscaler {
  int64_t interval_us = 60'000'000;
  int64_t startup_us = 30'000'000;
  std::function<FleetSize(const IntervalStats&)> decide;
};

// Optional callbacks for routers that track more than the Router interface (KvRouter).
struct SimulationHooks {
  std::function<void(const std::string& request_id)> on_prefill_done;
  std::function<void(const std::string& request_id, int32_t cached_tokens)> on_usage;
  // When set, holds the virtual time (us) of the event being processed: a router's clock.
  int64_t* virtual_now_us = nullptr;
  Autoscaler autoscaler;  // active when decide is set; options.workers is then the initial fleet
  // Disaggregated fleets (options.prefill_workers > 0): routes the prefill legs among the prefill
  // workers; holds nothing, simulate() adds them. Its KV events and loads come from those workers.
  router::Router* prefill_router = nullptr;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};

struct WorkerReport {
  uint64_t worker_id = 0;
  std::string role = "agg";  // agg | prefill | decode
  int64_t requests = 0;      // served here (a prefill worker: prefill legs)
  int64_t prompt_blocks = 0; // of the prompts it prefilled itself, and their prefix-cache hits
  int64_t cached_blocks = 0;
  double busy_fraction = 0;  // virtual time spent in steps / the worker's lifetime
  double start_s = 0;        // when it was started (0: from the beginning)
  double end_s = 0;          // when it was retired (drained or cancelled), else the makespan
};

struct TimelinePoint {
  double t_s = 0;
  int32_t serving = 0, starting = 0, draining = 0;
  int32_t wanted = 0;           // the autoscaler's answer at t_s
  int32_t prefill_serving = 0, prefill_wanted = 0;  // disaggregated fleets: the prefill pool
  double arrivals_per_s = 0;
  double mean_ttft_ms = 0, mean_itl_ms = 0;  // of the interval that ended at t_s (NaN: none)
};

struct SimulationReport {
  int64_t requests = 0;
  int64_t completed = 0;
  int64_t failed = 0;  // rejected by the engine (e.g. prompt larger than a worker's pool)
  double makespan_s = 0;
  double prefix_hit_ratio = 0;
  double pooled_oracle_hit_ratio = 0;   // one pooled LRU (trace.h)
  double pooled_optimal_hit_ratio = 0;  // Belady MIN over the pooled capacity: a strict bound
  double infinite_cache_hit_ratio = 0;
  Percentiles ttft_ms, itl_ms, e2e_ms;
  // TTFT split per request (completed requests with usage): the prompt's uncached tokens alone
  // on an idle worker (isolatedPrefillUs), and the rest (queueing, sharing steps): the floor a
  // router can reach through hits alone vs what load balancing can remove.
  Percentiles ttft_alone_ms, ttft_wait_ms;
  double output_tokens_per_s = 0;
  double input_tokens_per_s = 0;
  int64_t output_tokens = 0;
  int64_t preemptions = 0;
  std::vector<WorkerReport> workers;  // every worker that ever ran
  // Cost: the sum of the workers' lifetimes (start to retirement or makespan), and the most
  // workers alive at once.
  double worker_seconds = 0;
  int32_t peak_workers = 0;
  // Completed requests within the SLO (options.slo_*) / all requests; -1 without an SLO.
  double slo_attainment = -1;
  std::vector<TimelinePoint> timeline;  // one point per autoscaling interval
  // Disaggregated fleets: requests prefilled on a prefill worker, requests that should have been
  // but were prefilled by their decode worker (no prefill worker, or the leg failed), and the
  // blocks moved to decode workers.
  int64_t remote_prefills = 0;
  int64_t prefill_fallbacks = 0;
  int64_t transferred_blocks = 0;
  double wall_s = 0;
};

Status validateSimulationOptions(const SimulationOptions& options);

// Router: already holds nothing; simulate() adds workers 1..N. Requests that the router cannot
// route or the engine rejects count as failed.
Result<SimulationReport> simulate(const std::vector<TraceRequest>& trace,
                                  const SimulationOptions& options, router::Router& router,
                                  const SimulationHooks& hooks = {});

}  // namespace turbine::mocker
