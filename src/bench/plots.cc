#include "bench/plots.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace turbine::bench {
namespace {

constexpr size_t kMaxCdfPoints = 2000;

struct Series {
  std::string label;
  std::vector<double> x, y;
};

// Sorted values as (value, fraction <= value), thinned to at most kMaxCdfPoints.
Series cdf(std::string label, std::vector<double> v) {
  Series s{std::move(label), {}, {}};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const size_t step = std::max<size_t>(1, n / kMaxCdfPoints);
  for (size_t i = 0; i < n; i += step) {
    s.x.push_back(v[i]);
    s.y.push_back(static_cast<double>(i + 1) / static_cast<double>(n));
  }
  if (n > 0 && s.x.back() != v.back()) {
    s.x.push_back(v.back());
    s.y.push_back(1.0);
  }
  return s;
}

Series buckets(std::string label, const nlohmann::json& values, double bucket_s) {
  Series s{std::move(label), {}, {}};
  if (!values.is_array()) return s;
  for (size_t i = 0; i < values.size(); ++i) {
    s.x.push_back((static_cast<double>(i) + 0.5) * bucket_s);
    s.y.push_back(values[i].is_number() ? values[i].get<double>() : 0.0);
  }
  return s;
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string terminal() {
  static const std::string kTerminal =
      std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0 ? "pngcairo" : "png";
  return kTerminal;
}

// Writes the series' data files and a script, runs gnuplot and checks the PNG.
Status plot(const std::string& dir, const std::string& name, const std::string& title,
            const std::string& xlabel, const std::string& ylabel, const std::vector<Series>& series,
            bool steps, const std::string& y2label = "") {
  namespace fs = std::filesystem;
  const std::string data_dir = dir + "/plot_data";
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return ioError("cannot create " + data_dir + ": " + ec.message());
  const std::string png = dir + "/" + name + ".png";
  std::ofstream gp(data_dir + "/" + name + ".gp");
  gp << "set terminal " << terminal() << " size 900,560\n"
     << "set output " << quoted(png) << "\n"
     << "set title " << quoted(title) << "\nset xlabel " << quoted(xlabel)
     << "\nset ylabel " << quoted(ylabel) << "\nset grid\nset key bottom right\n";
  if (!y2label.empty()) gp << "set y2label " << quoted(y2label) << "\nset y2tics\nset ytics nomirror\n";
  std::string plot_cmd = "plot ";
  for (size_t i = 0; i < series.size(); ++i) {
    const std::string dat = data_dir + "/" + name + "_" + std::to_string(i) + ".dat";
    std::ofstream d(dat);
    d << "# x y\n";
    for (size_t k = 0; k < series[i].x.size(); ++k) d << series[i].x[k] << " " << series[i].y[k] << "\n";
    if (series[i].x.empty()) d << "0 0\n";
    if (!d) return ioError("cannot write " + dat);
    const std::string axes = !y2label.empty() && i > 0 ? " axes x1y2" : "";
    plot_cmd += (i ? ", " : "") + quoted(dat) + " using 1:2" + axes + " with " + (steps ? "steps" : "lines") +
                " lw 2 title " + quoted(series[i].label);
  }
  gp << plot_cmd << "\n";
  gp.close();
  if (!gp) return ioError("cannot write gnuplot script in " + data_dir);
  int rc = std::system(("gnuplot " + quoted(data_dir + "/" + name + ".gp") + " 2>" +
                        quoted(data_dir + "/gnuplot.log")).c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 127) {
    return unavailable("gnuplot not found (install gnuplot-nox)");
  }
  if (WEXITSTATUS(rc) != 0 || !isPngFile(png)) {
    return ioError("gnuplot failed to draw " + png + " (see " + data_dir + "/gnuplot.log)");
  }
  return Status::ok();
}

}  // namespace

std::vector<double> reportValues(const nlohmann::json& report, const std::string& metric) {
  std::vector<double> out;
  if (!report.contains("requests") || !report["requests"].is_array()) return out;
  for (const auto& r : report["requests"]) {
    if (!r.value("ok", false) || !r.contains(metric)) continue;
    const auto& v = r[metric];
    if (v.is_array()) {
      for (const auto& x : v) {
        if (x.is_number()) out.push_back(x.get<double>());
      }
    } else if (v.is_number() && v.get<double>() >= 0) {
      out.push_back(v.get<double>());
    }
  }
  return out;
}

std::vector<std::string> reportPlotNames() {
  return {"ttft_cdf.png", "itl_cdf.png", "throughput.png", "concurrency.png"};
}

Status writeReportPlots(const std::string& dir, const nlohmann::json& report) {
  TURBINE_RETURN_IF_ERROR(plot(dir, "ttft_cdf", "Time to first token (CDF)", "TTFT (ms)",
                               "fraction of requests", {cdf("ttft", reportValues(report, "ttft_ms"))},
                               true));
  TURBINE_RETURN_IF_ERROR(plot(dir, "itl_cdf", "Inter-token latency (CDF)", "ITL (ms)",
                               "fraction of gaps", {cdf("itl", reportValues(report, "itl_ms"))}, true));
  const nlohmann::json tl = report.value("timeline", nlohmann::json::object());
  const double b = tl.value("bucket_s", 1.0);
  TURBINE_RETURN_IF_ERROR(plot(dir, "throughput", "Throughput over time", "time (s)", "output tokens/s",
                               {buckets("output tokens/s", tl.value("output_tokens_per_s", nlohmann::json()), b),
                                buckets("requests finished/s (right)", tl.value("requests_finished", nlohmann::json()), b)},
                               false, "requests/s"));
  return plot(dir, "concurrency", "Requests in flight over time", "time (s)", "requests",
              {buckets("in flight (mean per bucket)", tl.value("concurrency", nlohmann::json()), b)},
              false);
}

Status writeComparePlots(const std::string& dir, const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& label_a, const std::string& label_b) {
  for (const char* m : {"ttft", "itl", "e2e"}) {
    const std::string metric = std::string(m) + "_ms";
    TURBINE_RETURN_IF_ERROR(plot(dir, std::string("compare_") + m + "_cdf",
                                 std::string(m) + " CDF: " + label_a + " vs " + label_b, metric,
                                 "fraction",
                                 {cdf(label_a, reportValues(a, metric)), cdf(label_b, reportValues(b, metric))},
                                 true));
  }
  return Status::ok();
}

bool isPngFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char sig[8] = {};
  if (!f.read(reinterpret_cast<char*>(sig), 8)) return false;
  const unsigned char kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return std::equal(sig, sig + 8, kSig);
}

}  // namespace turbine::bench
