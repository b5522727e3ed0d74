// FrontendMetrics: the Prometheus numbers of the HTTP frontend, rendered as text format 0.0.4.
//   turbine_http_requests_total{endpoint,status}     counter
//   turbine_time_to_first_token_seconds              histogram (request arrival -> first token)
//   turbine_inter_token_latency_seconds              histogram (between tokens of one sequence)
//   turbine_e2e_request_latency_seconds              histogram (arrival -> last byte queued)
//   turbine_prompt_tokens_total / turbine_generation_tokens_total   counters
//   turbine_requests_admitted_total / turbine_requests_refused_total  counters: generation
//                       requests the backend took / turned away (overload, no worker): the demand
//   turbine_num_requests_running / _waiting, turbine_kv_blocks_used / _total,
//   turbine_prefix_cache_hit_rate                    gauges, read from the backend at scrape time
// Thread safety: all record* methods are lock-free or take a short lock; safe from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "frontend/backend.h"

namespace turbine::frontend {

// A fixed-bucket histogram of seconds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double seconds);
  // Appends the _bucket/_sum/_count lines of `name`.
  void render(const std::string& name, const std::string& help, std::string& out) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> buckets_;  // non-cumulative; +Inf last
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

class FrontendMetrics {
 public:
  FrontendMetrics();

  void recordRequest(const std::string& endpoint, int http_status);
  void recordTimeToFirstToken(double seconds) { ttft_.observe(seconds); }
  void recordInterTokenLatency(double seconds) { itl_.observe(seconds); }
  void recordEndToEnd(double seconds) { e2e_.observe(seconds); }
  void addPromptTokens(int64_t n) { prompt_tokens_.fetch_add(n, std::memory_order_relaxed); }
  void addGenerationTokens(int64_t n) { generation_tokens_.fetch_add(n, std::memory_order_relaxed); }
  void recordAdmission(bool admitted) {
    (admitted ? admitted_ : refused_).fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t requestCount(const std::string& endpoint, int http_status) const;

  std::string render(const BackendStats& stats) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // guarded by mu_
  Histogram ttft_;
  Histogram itl_;
  Histogram e2e_;
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> generation_tokens_{0};
  std::atomic<int64_t> admitted_{0};
  std::atomic<int64_t> refused_{0};
};

}  // namespace turbine::frontend
