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
};

// Optional callbacks for routers that track more than the Router interface (KvRouter).
struct SimulationHooks {
  std::function<void(const std::string& request_id)> on_prefill_done;
  std::function<void(const std::string& request_id, int32_t cached_tokens)> on_usage;
  // When set, holds the virtual time (us) of the event being processed: a router's clock.
  int64_t* virtual_now_us = nullptr;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};

struct WorkerReport {
  uint64_t worker_id = 0;
  int64_t requests = 0;
  int64_t prompt_blocks = 0;
  int64_t cached_blocks = 0;
  double busy_fraction = 0;  // virtual time spent in steps / makespan
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
  std::vector<WorkerReport> workers;
  double wall_s = 0;
};

Status validateSimulationOptions(const SimulationOptions& options);

// Router: already holds nothing; simulate() adds workers 1..N. Requests that the router cannot
// route or the engine rejects count as failed.
Result<SimulationReport> simulate(const std::vector<TraceRequest>& trace,
                                  const SimulationOptions& options, router::Router& router,
                                  const SimulationHooks& hooks = {});

}  // namespace turbine::mocker
