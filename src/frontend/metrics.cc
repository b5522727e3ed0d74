#include "frontend/metrics.h"

#include <fmt/format.h>

namespace turbine::frontend {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1) {}

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double micros = seconds > 0 ? seconds * 1e6 : 0.0;
  sum_micros_.fetch_add(static_cast<uint64_t>(micros), std::memory_order_relaxed);
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  auto it = std::back_inserter(out);
  fmt::format_to(it, "# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    fmt::format_to(it, "{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += buckets_.back().load(std::memory_order_relaxed);
  fmt::format_to(it, "{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  fmt::format_to(it, "{}_sum {}\n", name, sum_micros_.load(std::memory_order_relaxed) / 1e6);
  fmt::format_to(it, "{}_count {}\n", name, cumulative);
}

FrontendMetrics::FrontendMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
            0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}),
      e2e_({0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
            40.0, 50.0, 60.0, 120.0, 240.0}) {}

void FrontendMetrics::recordRequest(const std::string& endpoint, int http_status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, http_status}];
}

uint64_t FrontendMetrics::requestCount(const std::string& endpoint, int http_status) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find({endpoint, http_status});
  return it == requests_.end() ? 0 : it->second;
}

std::string FrontendMetrics::render(const BackendStats& stats) const {
  std::string out;
  auto it = std::back_inserter(out);
  out += "# HELP turbine_http_requests_total HTTP requests by endpoint and status code.\n";
  out += "# TYPE turbine_http_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : requests_) {
      fmt::format_to(it, "turbine_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n",
                     key.first, key.second, n);
    }
  }
  ttft_.render("turbine_time_to_first_token_seconds", "Time from request arrival to first token.", out);
  itl_.render("turbine_inter_token_latency_seconds", "Time between consecutive tokens.", out);
  e2e_.render("turbine_e2e_request_latency_seconds", "Time from request arrival to completion.", out);
  auto counter = [&](const char* name, const char* help, int64_t v) {
    fmt::format_to(it, "# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    fmt::format_to(it, "# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  counter("turbine_prompt_tokens_total", "Prompt tokens of admitted requests.",
          prompt_tokens_.load(std::memory_order_relaxed));
  counter("turbine_generation_tokens_total", "Generated tokens.",
          generation_tokens_.load(std::memory_order_relaxed));
  counter("turbine_requests_admitted_total", "Generation requests the backend admitted.",
          admitted_.load(std::memory_order_relaxed));
  counter("turbine_requests_refused_total", "Generation requests the backend turned away (overload, no worker).",
          refused_.load(std::memory_order_relaxed));
  gauge("turbine_num_requests_running", "Requests being generated.", static_cast<double>(stats.running));
  gauge("turbine_num_requests_waiting", "Requests queued.", static_cast<double>(stats.waiting));
  gauge("turbine_kv_blocks_used", "KV cache blocks in use.", static_cast<double>(stats.kv_blocks_used));
  gauge("turbine_kv_blocks_total", "KV cache blocks in the pool.", static_cast<double>(stats.kv_blocks_total));
  gauge("turbine_kv_host_blocks_used", "KV blocks held in the workers' host caches.",
        static_cast<double>(stats.kv_host_blocks_used));
  gauge("turbine_kv_host_blocks_total", "KV blocks the workers' host caches can hold.",
        static_cast<double>(stats.kv_host_blocks_total));
  gauge("turbine_kv_disk_blocks_used", "KV blocks held in the workers' disk caches.",
        static_cast<double>(stats.kv_disk_blocks_used));
  gauge("turbine_kv_disk_blocks_total", "KV blocks the workers' disk caches can hold.",
        static_cast<double>(stats.kv_disk_blocks_total));
  gauge("turbine_prefix_cache_hit_rate", "Prefix cache hit tokens / queried prompt tokens.",
        stats.prefix_cache_hit_rate);
  out += stats.extra_metrics;  // the backend's own (router, event plane), already in text format
  return out;
}

}  // namespace turbine::frontend
