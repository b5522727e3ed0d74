// `turbine bench compare A.json B.json`: two bench reports side by side with B/A ratios.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace turbine::bench {

// Reads and checks a report.json (it must have "aggregates" and "requests"); errors name the file.
Result<nlohmann::json> loadReport(const std::string& path);

// Rows: requests ok/failed, throughputs, goodput, ttft/itl/tpot/e2e p50/p90/p99, each with A, B
// and B/A ("-" when A is 0 or a value is missing).
std::string compareTable(const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& label_a, const std::string& label_b);

}  // namespace turbine::bench
