#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace turbine::bench {

double RequestResult::tpotMs() const {
  const int32_t n = outputTokens();
  if (n < 2 || ttft_ms < 0 || e2e_ms < 0) return -1.0;
  return (e2e_ms - ttft_ms) / (n - 1);
}

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(k, 1, v.size()) - 1];
  };
  double sum = 0;
  for (double x : v) sum += x;
  p.count = static_cast<int64_t>(v.size());
  p.mean = sum / static_cast<double>(v.size());
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  p.max = v.back();
  return p;
}

Aggregates aggregate(const std::vector<RequestResult>& results, double duration_s,
                     const SloOptions& slo) {
  Aggregates a;
  a.duration_s = duration_s;
  std::vector<double> ttft, itl, e2e, tpot;
  int64_t prompt_with_cache = 0;
  for (const RequestResult& r : results) {
    ++a.requests_total;
    if (!r.ok()) {
      ++a.requests_failed;
      ++a.errors[r.error_kind];
      continue;
    }
    ++a.requests_ok;
    const int32_t in = r.prompt_tokens >= 0 ? r.prompt_tokens : r.input_tokens_requested;
    a.input_tokens += in;
    a.output_tokens += r.outputTokens();
    if (r.outputTokens() != r.output_tokens_requested) ++a.output_tokens_mismatch;
    if (r.cached_tokens >= 0) {
      a.cached_tokens += r.cached_tokens;
      prompt_with_cache += in;
    }
    ttft.push_back(r.ttft_ms);
    e2e.push_back(r.e2e_ms);
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
    const double t = r.tpotMs();
    if (t >= 0) tpot.push_back(t);
    const bool good = (slo.ttft_ms <= 0 || r.ttft_ms <= slo.ttft_ms) &&
                      (slo.itl_ms <= 0 || t < 0 || t <= slo.itl_ms);
    if (good) ++a.requests_good;
  }
  const double d = duration_s > 0 ? duration_s : 1.0;
  a.request_throughput = static_cast<double>(a.requests_ok) / d;
  a.output_tokens_per_s = static_cast<double>(a.output_tokens) / d;
  a.input_tokens_per_s = static_cast<double>(a.input_tokens) / d;
  a.total_tokens_per_s = a.output_tokens_per_s + a.input_tokens_per_s;
  a.goodput_req_per_s = static_cast<double>(a.requests_good) / d;
  a.cache_hit_ratio = prompt_with_cache > 0
                          ? static_cast<double>(a.cached_tokens) / static_cast<double>(prompt_with_cache)
                          : 0.0;
  a.ttft_ms = percentiles(std::move(ttft));
  a.itl_ms = percentiles(std::move(itl));
  a.e2e_ms = percentiles(std::move(e2e));
  a.tpot_ms = percentiles(std::move(tpot));
  return a;
}

Timeline timeline(const std::vector<RequestResult>& results, double duration_s, double bucket_s) {
  Timeline t;
  t.bucket_s = bucket_s;
  if (t.bucket_s <= 0) {
    for (double b : {0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0}) {
      t.bucket_s = b;
      if (duration_s / b <= 120.0) break;
    }
  }
  const size_t n = static_cast<size_t>(std::ceil(std::max(duration_s, 1e-9) / t.bucket_s));
  t.output_tokens_per_s.assign(n, 0.0);
  t.requests_finished.assign(n, 0.0);
  t.concurrency.assign(n, 0.0);
  auto bucket = [&](double s) {
    return std::min(n - 1, static_cast<size_t>(std::max(0.0, s) / t.bucket_s));
  };
  for (const RequestResult& r : results) {
    const double end = r.start_s + std::max(0.0, r.e2e_ms) / 1000.0;
    t.requests_finished[bucket(end)] += 1.0 / t.bucket_s;
    // In-flight time of this request, spread over the buckets it overlaps.
    for (size_t b = bucket(r.start_s); b <= bucket(end); ++b) {
      const double lo = std::max(r.start_s, b * t.bucket_s);
      const double hi = std::min(end, (b + 1) * t.bucket_s);
      if (hi > lo) t.concurrency[b] += (hi - lo) / t.bucket_s;
    }
    if (!r.ok() || r.chunks == 0) continue;
    // Content chunks at start + ttft + cumulative ITLs, each worth outputTokens()/chunks tokens.
    const double per_chunk = static_cast<double>(r.outputTokens()) / r.chunks / t.bucket_s;
    double at = r.start_s + r.ttft_ms / 1000.0;
    t.output_tokens_per_s[bucket(at)] += per_chunk;
    for (double g : r.itl_ms) {
      at += g / 1000.0;
      t.output_tokens_per_s[bucket(at)] += per_chunk;
    }
  }
  return t;
}

nlohmann::json toJson(const Percentiles& p) {
  return {{"count", p.count}, {"mean", p.mean}, {"p50", p.p50},
          {"p90", p.p90},     {"p99", p.p99},   {"max", p.max}};
}

nlohmann::json toJson(const Aggregates& a) {
  return {{"requests_total", a.requests_total},
          {"requests_ok", a.requests_ok},
          {"requests_failed", a.requests_failed},
          {"requests_good", a.requests_good},
          {"errors", a.errors},
          {"duration_s", a.duration_s},
          {"input_tokens", a.input_tokens},
          {"output_tokens", a.output_tokens},
          {"cached_tokens", a.cached_tokens},
          {"output_tokens_mismatch", a.output_tokens_mismatch},
          {"request_throughput", a.request_throughput},
          {"output_tokens_per_s", a.output_tokens_per_s},
          {"input_tokens_per_s", a.input_tokens_per_s},
          {"total_tokens_per_s", a.total_tokens_per_s},
          {"goodput_req_per_s", a.goodput_req_per_s},
          {"cache_hit_ratio", a.cache_hit_ratio},
          {"max_concurrency", a.max_concurrency},
          {"ttft_ms", toJson(a.ttft_ms)},
          {"itl_ms", toJson(a.itl_ms)},
          {"e2e_ms", toJson(a.e2e_ms)},
          {"tpot_ms", toJson(a.tpot_ms)}};
}

nlohmann::json toJson(const RequestResult& r) {
  nlohmann::json j = {{"id", r.id},
                      {"ok", r.ok()},
                      {"http_status", r.http_status},
                      {"start_s", r.start_s},
                      {"ttft_ms", r.ttft_ms},
                      {"e2e_ms", r.e2e_ms},
                      {"itl_ms", r.itl_ms},
                      {"input_tokens_requested", r.input_tokens_requested},
                      {"output_tokens_requested", r.output_tokens_requested},
                      {"prompt_tokens", r.prompt_tokens},
                      {"completion_tokens", r.completion_tokens},
                      {"cached_tokens", r.cached_tokens},
                      {"chunks", r.chunks}};
  if (r.user >= 0) {
    j["user"] = r.user;
    j["turn"] = r.turn;
  }
  if (!r.ok()) {
    j["error_kind"] = r.error_kind;
    j["error"] = r.error;
  }
  return j;
}

nlohmann::json reportJson(const nlohmann::json& config, const std::vector<RequestResult>& results,
                          const Aggregates& aggregates, const Timeline& tl) {
  nlohmann::json reqs = nlohmann::json::array();
  for (const auto& r : results) reqs.push_back(toJson(r));
  return {{"tool", "turbine bench"},
          {"config", config},
          {"aggregates", toJson(aggregates)},
          {"timeline", {{"bucket_s", tl.bucket_s},
                        {"output_tokens_per_s", tl.output_tokens_per_s},
                        {"requests_finished", tl.requests_finished},
                        {"concurrency", tl.concurrency}}},
          {"requests", std::move(reqs)}};
}

Status writeReport(const std::string& dir, const nlohmann::json& report) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return ioError("cannot create " + dir + ": " + ec.message());
  const std::string path = dir + "/report.json";
  std::ofstream f(path);
  f << report.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!f) return ioError("cannot write " + path);
  return Status::ok();
}

std::string summaryTable(const Aggregates& a) {
  std::string s;
  s += fmt::format("{:<28}{:>12}\n", "requests ok / failed",
                   fmt::format("{} / {}", a.requests_ok, a.requests_failed));
  for (const auto& [kind, n] : a.errors) s += fmt::format("  {:<26}{:>12}\n", kind, n);
  s += fmt::format("{:<28}{:>12.2f}\n", "duration (s)", a.duration_s);
  s += fmt::format("{:<28}{:>12.2f}\n", "request throughput (req/s)", a.request_throughput);
  s += fmt::format("{:<28}{:>12.2f}\n", "goodput (req/s)", a.goodput_req_per_s);
  s += fmt::format("{:<28}{:>12.1f}\n", "output tokens/s", a.output_tokens_per_s);
  s += fmt::format("{:<28}{:>12.1f}\n", "input tokens/s", a.input_tokens_per_s);
  s += fmt::format("{:<28}{:>12}\n", "tokens in / out",
                   fmt::format("{} / {}", a.input_tokens, a.output_tokens));
  s += fmt::format("{:<28}{:>11.1f}%\n", "prefix cache hit (server)", 100.0 * a.cache_hit_ratio);
  s += fmt::format("{:<10}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "ms", "mean", "p50", "p90", "p99", "max");
  auto row = [&](const char* name, const Percentiles& p) {
    s += fmt::format("{:<10}{:>10.2f}{:>10.2f}{:>10.2f}{:>10.2f}{:>10.2f}\n", name, p.mean, p.p50,
                     p.p90, p.p99, p.max);
  };
  row("ttft", a.ttft_ms);
  row("itl", a.itl_ms);
  row("tpot", a.tpot_ms);
  row("e2e", a.e2e_ms);
  return s;
}

}  // namespace turbine::bench
