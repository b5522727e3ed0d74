// EngineMetrics: the load of an engine Turbine does not run (vLLM, SGLang), read from its
// Prometheus endpoint (GET /metrics), for an upstream worker's load reports (DESIGN.md §3.3).
//
// What the worker sees by itself is only what goes through it: its requests in flight, and the
// blocks they hold. The engine's own gauges also give the requests it has queued (`waiting`,
// which the router's busy threshold reads), the KV blocks its pool really has and uses, and its
// token rates. Names read (summed over label sets: one series per model, DP rank or engine):
//   vLLM:   vllm:num_requests_running, vllm:num_requests_waiting, vllm:kv_cache_usage_perc (older:
//           vllm:gpu_cache_usage_perc; a fraction, 0..1), vllm:cache_config_info{block_size,
//           num_gpu_blocks} (the pool's size), vllm:prompt_tokens_total,
//           vllm:generation_tokens_total;
//   SGLang: sglang:num_running_reqs, sglang:num_queue_reqs, sglang:num_used_tokens (or
//           sglang:token_usage, a fraction), sglang:max_total_num_tokens, sglang:prompt_tokens_total,
//           sglang:generation_tokens_total (served with SGLang's --enable-metrics).
// Thread safety: the functions are pure; EngineMetricsPoller's methods are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"
#include "kv/load_metrics.h"
#include "worker/upstream_client.h"

namespace turbine::worker {

// An engine's /metrics body summed by metric name (common/prometheus_text.h, lenient: lines that
// are not a sample are counted and skipped; NaN and infinite values are no reading).
struct PromSamples {
  std::map<std::string, double, std::less<>> sums;     // by metric name, over its label sets
  std::map<std::string, size_t, std::less<>> series;   // label sets summed, by metric name
  // The labels of each name's first sample (for *_info metrics, whose labels are the data).
  std::map<std::string, std::map<std::string, std::string>, std::less<>> labels;
  size_t bad_lines = 0;  // lines that are not a sample (skipped)
};
PromSamples sumPrometheusText(std::string_view text);

// One reading of an engine's load, in Turbine blocks of `block_size` tokens; a field the engine
// did not report is empty.
struct EngineLoad {
  std::optional<int32_t> running;
  std::optional<int32_t> waiting;
  std::optional<int32_t> kv_blocks_total;
  std::optional<int32_t> kv_blocks_used;
  std::optional<double> prompt_tokens;      // counters since the engine started
  std::optional<double> generation_tokens;
};
EngineLoad engineLoad(const PromSamples& samples, UpstreamApi api, int32_t block_size);

// Reads the engine's metrics every `interval` on its own thread. `fetch` returns the text of
// GET /metrics (an error when the engine has none, or is down).
class EngineMetricsPoller {
 public:
  struct Reading {
    EngineLoad load;
    double prompt_tokens_per_s = 0;      // between the last two readings
    double generation_tokens_per_s = 0;
    std::chrono::steady_clock::time_point at;
  };
  // `on_state(ok, message)`: called on the poller's thread when reading starts or stops working
  // (the first reading, or the first failure after a success), for the worker's log.
  EngineMetricsPoller(std::function<Result<std::string>()> fetch, UpstreamApi api, int32_t block_size,
                      std::chrono::milliseconds interval,
                      std::function<void(bool ok, const std::string& message)> on_state = {});
  ~EngineMetricsPoller();  // stop()

  void start();
  void stop();
  // The last reading, if it is at most `max_age` old.
  std::optional<Reading> latest(std::chrono::steady_clock::duration max_age) const;
  // Reads once now (on the caller's thread); what the loop does every interval.
  void pollOnce();

 private:
  void loop();

  std::function<Result<std::string>()> fetch_;
  UpstreamApi api_;
  int32_t block_size_;
  std::chrono::milliseconds interval_;
  std::function<void(bool, const std::string&)> on_state_;
  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool stop_ = false;
  std::optional<Reading> last_;
  std::optional<bool> ok_;  // the state last reported through on_state
  std::thread thread_;
};

// An upstream worker's load report (worker_id and ts_ms left to the caller): what goes through
// the worker (`own`: its requests in flight and the blocks they hold; `kv_blocks_total`: the pool
// it was told of, --num-kv-blocks), with the engine's own gauges in their place where `engine`
// (a recent reading, or none) has them: running (requests from the engine's other clients
// included), waiting (0 without them: the worker queues nothing itself), the pool and the
// blocks in use, and the token rates.
kv::LoadMetrics upstreamLoadReport(const UpstreamClient::Load& own, int32_t kv_blocks_total,
                                   const std::optional<EngineMetricsPoller::Reading>& engine);

}  // namespace turbine::worker
