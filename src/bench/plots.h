// PNG plots of bench reports, drawn by gnuplot (Debian gnuplot-nox; pngcairo terminal, png as a
// fallback). Data files and the gnuplot script go to DIR/plot_data/; the PNGs to DIR.
// Plots of one report: ttft_cdf.png, itl_cdf.png, throughput.png, concurrency.png.
// Plots of a comparison: compare_ttft_cdf.png, compare_itl_cdf.png, compare_e2e_cdf.png.
// Returns Unavailable when gnuplot is missing, IoError when it fails or writes no PNG.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace turbine::bench {

// Per-request values of one metric from a report's "requests" (ok requests only);
// metric is "ttft_ms", "e2e_ms" or "itl_ms" (every ITL of every request).
std::vector<double> reportValues(const nlohmann::json& report, const std::string& metric);

// The PNG files writeReportPlots writes.
std::vector<std::string> reportPlotNames();

Status writeReportPlots(const std::string& dir, const nlohmann::json& report);
Status writeComparePlots(const std::string& dir, const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& label_a, const std::string& label_b);

// True when the file exists, is non-empty and starts with the 8-byte PNG signature.
bool isPngFile(const std::string& path);

}  // namespace turbine::bench
