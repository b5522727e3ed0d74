// CapacityModel: how much request rate one worker can take while meeting a latency target, from
// the timing model that describes it (mocker::TimingProfile: the same coefficients the simulated
// engine runs on, fitted to a real engine or written by hand). The SLA planner divides the
// predicted request rate by these per-worker rates to get replica counts.
//
// A worker at a steady request rate r (requests/s) for a workload of mean input length I, of
// which a fraction h is a prefix-cache hit (P = (1 - h) I new tokens), and mean output length O:
//
//   work per request (us)  W  = O (decode_us_per_seq + kv_read_us_per_token (I + O/2))
//                              + P prefill_us_per_token + attention_us_per_pair P (hI + P/2)
//   steps run back to back: the step base is paid once per step, the rest once per request, so
//   the mean step time is  T = step_base_us / (1 - r W)     (r W < 1: the utilization of work)
//   decoding sequences      c = r O T                        (Little's law)
//   ITL ~ T                 (every decoding sequence gets one token per step)
//   TTFT ~ T / 2 + S + Wq   S = the prompt's chunks (ceil(P / B) steps of T, B =
//                               max_num_batched_tokens - c the step's prefill budget) plus its
//                               own prefill work; Wq = the M/D/1 wait rho S / (2 (1 - rho)),
//                               rho = r P T / B the share of the prefill budget in use (prompts
//                               arriving during a step share the next one).
// Disaggregated roles split this: a prefill worker runs prompts only (one output token each; S =
// the prompt alone, batched or not, and Wq as above, plus the KV transfer to the decode worker at
// onboard_us_per_token), a decode worker decodes only (W without prefill work but with the
// import copy, onboard_us_per_token per prompt token).
// All divided by the profile's speedup. Estimates, not guarantees: the planner corrects them with
// the ratio of observed to expected latency (sla_planner.h).
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "mocker/timing_model.h"

namespace turbine::planner {

enum class WorkerRole { kAgg, kPrefill, kDecode };
std::string_view workerRoleName(WorkerRole role);

struct Workload {
  double input_tokens = 0;    // mean prompt length (tokens)
  double output_tokens = 0;   // mean generated tokens
  double cached_fraction = 0; // of the prompt, found in the prefix cache [0, 1)
};

struct LatencyTargets {
  double ttft_ms = 0;  // mean time to first token
  double itl_ms = 0;   // mean inter-token latency
};

// What a worker of `role` does at `rate_per_s` requests/s. stable == false when the rate is
// beyond its throughput (the latencies then grow without bound and are reported as +inf).
struct WorkerEstimate {
  bool stable = true;
  double step_ms = 0;        // mean step time
  double ttft_ms = 0;        // prefill and decode roles: each its own part
  double itl_ms = 0;
  double concurrency = 0;    // decoding sequences
  double utilization = 0;    // r W of the formulas above
};

WorkerEstimate estimateWorker(const mocker::TimingProfile& profile, WorkerRole role,
                              const Workload& workload, double rate_per_s);

// The largest rate (requests/s) at which estimateWorker() meets `targets` (the parts its role
// owns: TTFT for prefill, ITL for decode, both for agg), utilization stays <= max_utilization and
// concurrency <= max_num_seqs. 0 when not even a trickle meets them (e.g. the prompt alone takes
// longer than the TTFT target): the planner then asks for its maximum.
double maxRatePerWorker(const mocker::TimingProfile& profile, WorkerRole role,
                        const Workload& workload, const LatencyTargets& targets,
                        double max_utilization);

}  // namespace turbine::planner
