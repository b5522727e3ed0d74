#include "worker/engine_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "common/prometheus_text.h"

namespace turbine::worker {
namespace {

int32_t toInt32(double v) {
  return static_cast<int32_t>(std::clamp(std::llround(v), 0LL, static_cast<long long>(std::numeric_limits<int32_t>::max())));
}

}  // namespace

PromSamples sumPrometheusText(std::string_view text) {
  PromSamples out;
  for (PrometheusSample& sample : parsePrometheusTextLenient(text, &out.bad_lines)) {
    if (!std::isfinite(sample.value)) continue;  // NaN or +-Inf: no reading
    auto it = out.sums.find(sample.name);
    if (it == out.sums.end()) {
      out.labels.emplace(sample.name, std::map<std::string, std::string>(sample.labels.begin(), sample.labels.end()));
      out.series.emplace(sample.name, 1);
      out.sums.emplace(std::move(sample.name), sample.value);
    } else {
      it->second += sample.value;
      ++out.series.find(sample.name)->second;
    }
  }
  return out;
}

EngineLoad engineLoad(const PromSamples& s, UpstreamApi api, int32_t block_size) {
  auto sum = [&](std::string_view name) -> std::optional<double> {
    auto it = s.sums.find(name);
    if (it == s.sums.end()) return std::nullopt;
    return it->second;
  };
  auto mean = [&](std::string_view name) -> std::optional<double> {  // of a fraction per series
    auto it = s.sums.find(name);
    if (it == s.sums.end()) return std::nullopt;
    return it->second / static_cast<double>(std::max<size_t>(s.series.find(name)->second, 1));
  };
  auto count = [](std::optional<double> v) -> std::optional<int32_t> {
    if (!v) return std::nullopt;
    return toInt32(*v);
  };
  const double bs = std::max(block_size, 1);
  EngineLoad l;
  std::optional<double> usage, total_tokens, used_tokens;
  if (api == UpstreamApi::kSglang) {
    l.running = count(sum("sglang:num_running_reqs"));
    l.waiting = count(sum("sglang:num_queue_reqs"));
    total_tokens = sum("sglang:max_total_num_tokens");
    used_tokens = sum("sglang:num_used_tokens");
    usage = mean("sglang:token_usage");
    l.prompt_tokens = sum("sglang:prompt_tokens_total");
    l.generation_tokens = sum("sglang:generation_tokens_total");
  } else {
    l.running = count(sum("vllm:num_requests_running"));
    l.waiting = count(sum("vllm:num_requests_waiting"));
    usage = mean("vllm:kv_cache_usage_perc");
    if (!usage) usage = mean("vllm:gpu_cache_usage_perc");
    // The pool's size is in the labels of an info metric (one per engine; DP ranks alike).
    if (auto it = s.labels.find("vllm:cache_config_info"); it != s.labels.end()) {
      auto blocks = it->second.find("num_gpu_blocks");
      auto size = it->second.find("block_size");
      if (blocks != it->second.end() && size != it->second.end()) {
        char* e1 = nullptr;
        char* e2 = nullptr;
        const double b = std::strtod(blocks->second.c_str(), &e1);
        const double z = std::strtod(size->second.c_str(), &e2);
        if (*e1 == '\0' && *e2 == '\0' && b > 0 && z > 0) {
          total_tokens = b * z * static_cast<double>(s.series.find("vllm:cache_config_info")->second);
        }
      }
    }
    l.prompt_tokens = sum("vllm:prompt_tokens_total");
    l.generation_tokens = sum("vllm:generation_tokens_total");
  }
  if (total_tokens) l.kv_blocks_total = toInt32(std::floor(*total_tokens / bs));
  if (used_tokens) {
    l.kv_blocks_used = toInt32(std::ceil(*used_tokens / bs));
  } else if (usage && l.kv_blocks_total) {
    l.kv_blocks_used = toInt32(std::clamp(*usage, 0.0, 1.0) * *l.kv_blocks_total);
  }
  return l;
}

EngineMetricsPoller::EngineMetricsPoller(std::function<Result<std::string>()> fetch, UpstreamApi api,
                                         int32_t block_size, std::chrono::milliseconds interval,
                                         std::function<void(bool, const std::string&)> on_state)
    : fetch_(std::move(fetch)),
      api_(api),
      block_size_(block_size),
      interval_(interval),
      on_state_(std::move(on_state)) {}

EngineMetricsPoller::~EngineMetricsPoller() { stop(); }

void EngineMetricsPoller::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { loop(); });
}

void EngineMetricsPoller::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<EngineMetricsPoller::Reading> EngineMetricsPoller::latest(
    std::chrono::steady_clock::duration max_age) const {
  std::lock_guard lock(mu_);
  if (!last_ || std::chrono::steady_clock::now() - last_->at > max_age) return std::nullopt;
  return last_;
}

void EngineMetricsPoller::pollOnce() {
  Result<std::string> text = fetch_();
  std::optional<Reading> reading;
  std::string message;
  if (!text.isOk()) {
    message = text.status().message();
  } else {
    const PromSamples samples = sumPrometheusText(*text);
    Reading r{engineLoad(samples, api_, block_size_), 0, 0, std::chrono::steady_clock::now()};
    if (!r.load.running && !r.load.waiting) {
      message = std::string("no ") + (api_ == UpstreamApi::kSglang ? "sglang:num_running_reqs" : "vllm:num_requests_running") +
                " in the engine's /metrics";
    } else {
      reading = r;
    }
  }
  bool report = false;
  {
    std::lock_guard lock(mu_);
    if (reading) {
      if (last_) {
        const double dt = std::chrono::duration<double>(reading->at - last_->at).count();
        auto rate = [&](const std::optional<double>& now, const std::optional<double>& before) {
          return now && before && dt > 0 ? std::max(0.0, *now - *before) / dt : 0.0;
        };
        reading->prompt_tokens_per_s = rate(reading->load.prompt_tokens, last_->load.prompt_tokens);
        reading->generation_tokens_per_s = rate(reading->load.generation_tokens, last_->load.generation_tokens);
      }
      last_ = reading;
    }
    const bool ok = reading.has_value();
    report = ok_ != ok;
    ok_ = ok;
  }
  if (report && on_state_) {
    on_state_(reading.has_value(), reading ? "reading the engine's load from its /metrics" : message);
  }
}

void EngineMetricsPoller::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    pollOnce();
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

kv::LoadMetrics upstreamLoadReport(const UpstreamClient::Load& own, int32_t kv_blocks_total,
                                   const std::optional<EngineMetricsPoller::Reading>& engine) {
  kv::LoadMetrics m;
  m.running = own.running;
  m.kv_blocks_total = kv_blocks_total;
  m.kv_blocks_used = own.kv_blocks_used;
  if (engine) {
    const EngineLoad& e = engine->load;
    m.running = e.running.value_or(m.running);
    m.waiting = e.waiting.value_or(0);
    m.kv_blocks_total = e.kv_blocks_total.value_or(m.kv_blocks_total);
    m.kv_blocks_used = e.kv_blocks_used.value_or(m.kv_blocks_used);
    m.tokens_per_s_prefill = engine->prompt_tokens_per_s;
    m.tokens_per_s_decode = engine->generation_tokens_per_s;
  }
  return m;
}

}  // namespace turbine::worker
