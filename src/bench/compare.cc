#include "bench/compare.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace turbine::bench {
namespace {

// aggregates/<path...> as a number, or nullopt.
std::optional<double> number(const nlohmann::json& report, const std::vector<std::string>& path) {
  const nlohmann::json* j = &report["aggregates"];
  for (const auto& key : path) {
    if (!j->is_object() || !j->contains(key)) return std::nullopt;
    j = &(*j)[key];
  }
  if (!j->is_number()) return std::nullopt;
  return j->get<double>();
}

std::string cell(std::optional<double> v) { return v ? fmt::format("{:.2f}", *v) : "-"; }

}  // namespace

Result<nlohmann::json> loadReport(const std::string& path) {
  std::ifstream f(path);
  if (!f) return notFound("cannot open report " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return invalidArgument(path + ": not valid JSON");
  if (!j.is_object() || !j.contains("aggregates") || !j["aggregates"].is_object() ||
      !j.contains("requests") || !j["requests"].is_array()) {
    return invalidArgument(path + ": not a turbine bench report (needs 'aggregates' and 'requests')");
  }
  return j;
}

std::string compareTable(const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& label_a, const std::string& label_b) {
  std::vector<std::pair<std::string, std::vector<std::string>>> rows = {
      {"requests ok", {"requests_ok"}},
      {"requests failed", {"requests_failed"}},
      {"duration (s)", {"duration_s"}},
      {"request throughput (req/s)", {"request_throughput"}},
      {"goodput (req/s)", {"goodput_req_per_s"}},
      {"output tokens/s", {"output_tokens_per_s"}},
      {"input tokens/s", {"input_tokens_per_s"}},
      {"cache hit ratio", {"cache_hit_ratio"}},
  };
  for (const char* m : {"ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"}) {
    for (const char* p : {"p50", "p90", "p99"}) {
      rows.push_back({std::string(m) + " " + p, {m, p}});
    }
  }
  std::string s = fmt::format("{:<28}{:>14}{:>14}{:>10}\n", "metric", label_a.substr(0, 13),
                              label_b.substr(0, 13), "B/A");
  for (const auto& [name, path] : rows) {
    auto va = number(a, path), vb = number(b, path);
    std::string ratio = va && vb && *va != 0 ? fmt::format("{:.3f}", *vb / *va) : "-";
    s += fmt::format("{:<28}{:>14}{:>14}{:>10}\n", name, cell(va), cell(vb), ratio);
  }
  return s;
}

}  // namespace turbine::bench
