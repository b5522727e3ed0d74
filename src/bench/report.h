// Aggregates of a bench run and the report.json / summary table built from them.
// Formulas (all over the run's duration D = first send to last completion, seconds):
//   request_throughput = requests_ok / D; output_tokens_per_s = sum(ok outputTokens()) / D;
//   input_tokens_per_s = sum(ok prompt tokens, usage or requested) / D;
//   goodput_req_per_s = (ok requests with ttft <= slo_ttft_ms and tpot <= slo_itl_ms) / D, where
//   tpot = (e2e - ttft) / (output tokens - 1) (DistServe's TPOT; an unset SLO always holds);
//   percentiles are nearest-rank over ok requests (ttft, e2e, tpot) or over every ITL of every
//   ok request (itl); cache_hit_ratio = sum(cached_tokens) / sum(prompt_tokens) where reported.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_types.h"
#include "common/status.h"

namespace turbine::bench {

struct Percentiles {
  int64_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};
// Nearest-rank percentiles; all zero when values is empty. Sorts `values`.
Percentiles percentiles(std::vector<double> values);

struct SloOptions {
  double ttft_ms = 0.0;  // 0: no TTFT objective
  double itl_ms = 0.0;   // 0: no inter-token objective (compared with the request's TPOT)
};

struct Aggregates {
  int64_t requests_total = 0, requests_ok = 0, requests_failed = 0, requests_good = 0;
  std::map<std::string, int64_t> errors;  // error_kind -> count
  double duration_s = 0.0;
  int64_t input_tokens = 0, output_tokens = 0, cached_tokens = 0;
  int64_t output_tokens_mismatch = 0;  // ok requests whose output != max_tokens asked
  double request_throughput = 0, output_tokens_per_s = 0, input_tokens_per_s = 0;
  double total_tokens_per_s = 0, goodput_req_per_s = 0, cache_hit_ratio = 0;
  int32_t max_concurrency = 0;
  Percentiles ttft_ms, itl_ms, e2e_ms, tpot_ms;
};

Aggregates aggregate(const std::vector<RequestResult>& results, double duration_s,
                     const SloOptions& slo);

// Buckets from t = 0 to the end of the run: output tokens/s (token times reconstructed from
// ttft and the ITLs), requests finished per second, and mean in-flight requests. bucket_s <= 0
// picks the smallest of 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60 s giving at most 120 buckets.
struct Timeline {
  double bucket_s = 1.0;
  std::vector<double> output_tokens_per_s, requests_finished, concurrency;
};
Timeline timeline(const std::vector<RequestResult>& results, double duration_s,
                  double bucket_s = 0.0);

nlohmann::json toJson(const Percentiles& p);
nlohmann::json toJson(const Aggregates& a);
nlohmann::json toJson(const RequestResult& r);

// The whole report: {"config": config, "aggregates": ..., "timeline": ..., "requests": [...]}.
nlohmann::json reportJson(const nlohmann::json& config, const std::vector<RequestResult>& results,
                          const Aggregates& aggregates, const Timeline& timeline);
// Writes dir/report.json (creating dir).
Status writeReport(const std::string& dir, const nlohmann::json& report);

// A human-readable table of the aggregates.
std::string summaryTable(const Aggregates& a);

}  // namespace turbine::bench
