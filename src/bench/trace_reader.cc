#include "bench/trace_reader.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace turbine::bench {
namespace {

std::string where(const std::string& name, size_t line) {
  return name + ":" + std::to_string(line) + ": ";
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian).
int64_t daysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool parseInt(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

Result<int32_t> lengthField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return invalidArgument(std::string("missing field '") + key + "'");
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
    return invalidArgument(std::string("field '") + key + "' is not a non-negative integer");
  }
  return static_cast<int32_t>(it->get<int64_t>());
}

Result<TraceRecord> mooncakeRecord(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("not a JSON object");
  TraceRecord r;
  auto ts = j.find("timestamp");
  if (ts == j.end() || !ts->is_number() || ts->get<double>() < 0) {
    return invalidArgument("missing or negative field 'timestamp'");
  }
  r.timestamp_ms = ts->get<double>();
  TURBINE_ASSIGN_OR_RETURN(r.input_length, lengthField(j, "input_length"));
  TURBINE_ASSIGN_OR_RETURN(r.output_length, lengthField(j, "output_length"));
  auto ids = j.find("hash_ids");
  if (ids != j.end()) {
    if (!ids->is_array()) return invalidArgument("field 'hash_ids' is not an array");
    for (const auto& id : *ids) {
      if (!id.is_number_integer()) return invalidArgument("field 'hash_ids' holds a non-integer");
      r.hash_ids.push_back(id.get<int64_t>());
    }
  }
  return r;
}

}  // namespace

Result<std::vector<TraceRecord>> parseMooncake(const std::string& text, const std::string& name) {
  std::vector<TraceRecord> out;
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string_view s = trim(line);
    if (s.empty()) continue;
    Result<TraceRecord> r = mooncakeRecord(s);
    if (!r.isOk()) return invalidArgument(where(name, n) + r.status().message());
    out.push_back(std::move(r).value());
  }
  if (out.empty()) return invalidArgument(name + ": no trace records");
  return out;
}

Result<double> parseAzureTimestamp(const std::string& field) {
  std::string_view s = trim(field);
  // YYYY-MM-DD HH:MM:SS then an optional fraction.
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
      s[13] != ':' || s[16] != ':') {
    return invalidArgument("bad TIMESTAMP '" + std::string(s) + "'");
  }
  int64_t y, mo, d, h, mi, sec;
  if (!parseInt(s.substr(0, 4), y) || !parseInt(s.substr(5, 2), mo) ||
      !parseInt(s.substr(8, 2), d) || !parseInt(s.substr(11, 2), h) ||
      !parseInt(s.substr(14, 2), mi) || !parseInt(s.substr(17, 2), sec) || mo < 1 || mo > 12 ||
      d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
    return invalidArgument("bad TIMESTAMP '" + std::string(s) + "'");
  }
  double frac = 0.0;
  if (s.size() > 19) {
    std::string_view f = s.substr(20);
    int64_t digits;
    if (s[19] != '.' || f.empty() || f.size() > 9 || !parseInt(f, digits) || digits < 0) {
      return invalidArgument("bad TIMESTAMP '" + std::string(s) + "'");
    }
    double scale = 1.0;
    for (size_t i = 0; i < f.size(); ++i) scale *= 10.0;
    frac = static_cast<double>(digits) / scale;
  }
  return static_cast<double>(daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) + frac;
}

Result<std::vector<TraceRecord>> parseAzureCsv(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  std::vector<TraceRecord> out;
  double t0 = 0.0;
  while (std::getline(in, line)) {
    ++n;
    std::string_view s = trim(line);
    if (s.empty()) continue;
    if (n == 1) {
      if (s.substr(0, 9) != "TIMESTAMP") {
        return invalidArgument(where(name, n) +
                               "expected header 'TIMESTAMP,ContextTokens,GeneratedTokens'");
      }
      continue;
    }
    size_t c1 = s.find(','), c2 = c1 == std::string_view::npos ? c1 : s.find(',', c1 + 1);
    if (c2 == std::string_view::npos || s.find(',', c2 + 1) != std::string_view::npos) {
      return invalidArgument(where(name, n) + "expected 3 comma-separated fields");
    }
    Result<double> ts = parseAzureTimestamp(std::string(s.substr(0, c1)));
    if (!ts.isOk()) return invalidArgument(where(name, n) + ts.status().message());
    int64_t in_len, out_len;
    if (!parseInt(trim(s.substr(c1 + 1, c2 - c1 - 1)), in_len) || in_len < 0 || in_len > INT32_MAX) {
      return invalidArgument(where(name, n) + "ContextTokens is not a non-negative integer");
    }
    if (!parseInt(trim(s.substr(c2 + 1)), out_len) || out_len < 0 || out_len > INT32_MAX) {
      return invalidArgument(where(name, n) + "GeneratedTokens is not a non-negative integer");
    }
    if (out.empty()) t0 = *ts;
    TraceRecord r;
    r.timestamp_ms = (*ts - t0) * 1000.0;
    r.input_length = static_cast<int32_t>(in_len);
    r.output_length = static_cast<int32_t>(out_len);
    out.push_back(std::move(r));
  }
  if (out.empty()) return invalidArgument(name + ": no trace records");
  return out;
}

Result<std::vector<TraceRecord>> readTrace(const std::string& path, TraceFormat format) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return notFound("cannot open trace file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (format == TraceFormat::kAuto) {
    bool csv = path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0;
    format = csv ? TraceFormat::kAzure : TraceFormat::kMooncake;
  }
  return format == TraceFormat::kAzure ? parseAzureCsv(ss.str(), path) : parseMooncake(ss.str(), path);
}

}  // namespace turbine::bench
