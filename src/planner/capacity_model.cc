#include "planner/capacity_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace turbine::planner {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Work {
  double prefill_s = 0;  // the prompt's own prefill work (no step base)
  double decode_s = 0;   // the output's decode work, or the import copy (decode role)
  double new_tokens = 0;
};

Work workOf(const mocker::TimingProfile& p, WorkerRole role, const Workload& w) {
  const double scale = 1e-6 / p.speedup;
  const double cached = std::clamp(w.cached_fraction, 0.0, 1.0) * w.input_tokens;
  Work k;
  k.new_tokens = std::max(w.input_tokens - cached, 0.0);
  if (role != WorkerRole::kDecode) {
    k.prefill_s = (p.prefill_us_per_token * k.new_tokens +
                   p.attention_us_per_pair * k.new_tokens * (cached + k.new_tokens / 2)) * scale;
  }
  const double context = w.input_tokens + w.output_tokens / 2;
  if (role != WorkerRole::kPrefill) {
    k.decode_s = w.output_tokens * (p.decode_us_per_seq + p.kv_read_us_per_token * context) * scale;
  }
  if (role == WorkerRole::kDecode) k.decode_s += p.onboard_us_per_token * w.input_tokens * scale;
  return k;
}

}  // namespace

std::string_view workerRoleName(WorkerRole role) {
  switch (role) {
    case WorkerRole::kAgg: return "agg";
    case WorkerRole::kPrefill: return "prefill";
    case WorkerRole::kDecode: return "decode";
  }
  return "agg";
}

WorkerEstimate estimateWorker(const mocker::TimingProfile& p, WorkerRole role,
                              const Workload& workload, double rate) {
  WorkerEstimate e;
  const Work k = workOf(p, role, workload);
  const double base_s = p.step_base_us * 1e-6 / p.speedup;
  rate = std::max(rate, 0.0);
  e.utilization = rate * (k.prefill_s + k.decode_s);
  if (e.utilization >= 1.0) {
    e.stable = false;
    e.step_ms = e.ttft_ms = e.itl_ms = e.concurrency = kInf;
    return e;
  }
  const double step_s = base_s / (1.0 - e.utilization);
  e.step_ms = step_s * 1e3;
  const double outputs = role == WorkerRole::kPrefill ? 0.0 : workload.output_tokens;
  e.concurrency = rate * outputs * step_s;
  if (role == WorkerRole::kDecode) {
    e.itl_ms = e.step_ms;
    e.ttft_ms = e.step_ms;  // its part of the TTFT: the first step after the import
    return e;
  }
  const double budget = std::max(static_cast<double>(p.max_num_batched_tokens) - e.concurrency, 1.0);
  const double chunks = std::max(std::ceil(k.new_tokens / budget), 1.0);
  const double service_s = chunks * step_s + k.prefill_s;
  // Prompts that arrive during a step share the next one up to the token budget: they wait for
  // each other only as that budget fills.
  const double rho = rate * k.new_tokens * step_s / budget;
  const double wait_s = rho < 1.0 ? rho * service_s / (2.0 * (1.0 - rho)) : kInf;
  double ttft_s = step_s / 2 + wait_s + service_s;
  if (role == WorkerRole::kPrefill) {
    ttft_s += p.onboard_us_per_token * workload.input_tokens * 1e-6 / p.speedup;  // the transfer
    e.itl_ms = 0;
  } else {
    e.itl_ms = e.step_ms;
  }
  e.ttft_ms = ttft_s * 1e3;
  return e;
}

double maxRatePerWorker(const mocker::TimingProfile& p, WorkerRole role, const Workload& workload,
                        const LatencyTargets& targets, double max_utilization) {
  const Work k = workOf(p, role, workload);
  const double work_s = k.prefill_s + k.decode_s;
  const double cap = std::clamp(max_utilization, 0.0, 0.999);
  auto meets = [&](double rate) {
    const WorkerEstimate e = estimateWorker(p, role, workload, rate);
    if (!e.stable || e.utilization > cap) return false;
    if (e.concurrency > static_cast<double>(p.max_num_seqs)) return false;
    if (role != WorkerRole::kDecode && targets.ttft_ms > 0 && e.ttft_ms > targets.ttft_ms) return false;
    if (role != WorkerRole::kPrefill && targets.itl_ms > 0 && e.itl_ms > targets.itl_ms) return false;
    return true;
  };
  if (!(work_s > 0)) return kInf;  // nothing to do per request: no rate limit from work
  double lo = 0, hi = cap / work_s;
  if (!meets(hi * 1e-9)) return 0;
  if (meets(hi)) return hi;
  for (int i = 0; i < 100 && hi - lo > hi * 1e-9; ++i) {
    const double mid = (lo + hi) / 2;
    (meets(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace turbine::planner
