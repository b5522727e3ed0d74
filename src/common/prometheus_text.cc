#include "common/prometheus_text.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace turbine {

namespace {

bool isBlank(char c) { return c == ' ' || c == '\t'; }
bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isMetricNameChar(char c, bool first) {
  return isLetter(c) || c == ':' || (!first && isDigit(c));
}
bool isLabelNameChar(char c, bool first) { return isLetter(c) || (!first && isDigit(c)); }

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// A position in one line (without its \n), and the few ways of reading from it.
struct Cursor {
  std::string_view s;
  size_t i = 0;

  bool done() const { return i >= s.size(); }
  char peek() const { return done() ? '\0' : s[i]; }
  void skipBlanks() {
    while (!done() && isBlank(s[i])) ++i;
  }
  // The longest run from here of characters c with ok(c, c is the run's first).
  template <typename Pred>
  std::string_view take(Pred ok) {
    const size_t start = i;
    while (!done() && ok(s[i], i == start)) ++i;
    return s.substr(start, i - start);
  }
  std::string_view token() { return take([](char c, bool) { return !isBlank(c); }); }
  // What is at the cursor, for messages: 'x', byte 0x07, or end of line.
  std::string found() const {
    if (done()) return "end of line";
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + s[i] + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }
};

// Cursor at the opening quote; leaves it after the closing one.
Result<std::string> readLabelValue(Cursor& c) {
  std::string value;
  for (++c.i; !c.done();) {
    const char ch = c.s[c.i++];
    if (ch == '"') return value;
    if (ch != '\\') {
      value += ch;
      continue;
    }
    if (c.done()) break;
    switch (c.s[c.i++]) {
      case '\\': value += '\\'; break;
      case '"': value += '"'; break;
      case 'n': value += '\n'; break;
      default:
        --c.i;
        return invalidArgument("invalid escape in label value: backslash then " + c.found());
    }
  }
  return invalidArgument("unterminated label value");
}

// Cursor at '{'; leaves it after the matching '}'.
Status readLabels(Cursor& c, std::vector<std::pair<std::string, std::string>>& labels) {
  for (++c.i;;) {
    c.skipBlanks();
    if (c.done()) return invalidArgument("unterminated '{'");
    if (c.peek() == '}') {
      ++c.i;
      return Status::ok();
    }
    const std::string_view name = c.take(isLabelNameChar);
    if (name.empty()) return invalidArgument("expected a label name or '}', found " + c.found());
    const auto same = [&](const auto& label) { return label.first == name; };
    if (std::any_of(labels.begin(), labels.end(), same)) {
      return invalidArgument("label " + quoted(name) + " written twice");
    }
    c.skipBlanks();
    if (c.peek() != '=') {
      return invalidArgument("expected '=' after label " + quoted(name) + ", found " + c.found());
    }
    ++c.i;
    c.skipBlanks();
    if (c.peek() != '"') {
      return invalidArgument("expected '\"' to open the value of label " + quoted(name) +
                             ", found " + c.found());
    }
    TURBINE_ASSIGN_OR_RETURN(std::string value, readLabelValue(c));
    labels.emplace_back(name, std::move(value));
    c.skipBlanks();
    if (c.peek() == ',') {
      ++c.i;
    } else if (!c.done() && c.peek() != '}') {
      return invalidArgument("expected ',' or '}' after the value of label " + quoted(name) +
                             ", found " + c.found());
    }
  }
}

bool parseValue(std::string_view token, double& out) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (token == "+Inf" || token == "Inf") return out = kInf, true;
  if (token == "-Inf") return out = -kInf, true;
  if (token == "NaN") return out = std::numeric_limits<double>::quiet_NaN(), true;
  // strtod skips leading whitespace of any kind, and reads "" as 0: neither is a value here.
  if (token.empty() || std::isspace(static_cast<unsigned char>(token[0]))) return false;
  const std::string buf(token);  // strtod needs the terminating NUL
  char* end = nullptr;
  out = std::strtod(buf.c_str(), &end);
  return end == buf.c_str() + buf.size();
}

bool isTimestamp(std::string_view token) {
  int64_t ms = 0;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), ms);
  return ec == std::errc() && end == token.data() + token.size();
}

// One line that is neither blank nor a comment, leading blanks removed.
Result<PrometheusSample> parseSampleLine(std::string_view line) {
  Cursor c{line};
  PrometheusSample sample;
  sample.name = c.take(isMetricNameChar);
  if (sample.name.empty()) {
    return invalidArgument("a metric name must start with [a-zA-Z_:], found " + c.found());
  }
  if (!c.done() && !isBlank(c.peek()) && c.peek() != '{') {
    return invalidArgument("unexpected " + c.found() + " in metric name " + quoted(sample.name));
  }
  c.skipBlanks();
  if (c.peek() == '{') TURBINE_RETURN_IF_ERROR(readLabels(c, sample.labels));
  c.skipBlanks();
  const std::string_view value = c.token();
  if (value.empty()) return invalidArgument("missing value for " + quoted(sample.name));
  if (!parseValue(value, sample.value)) {
    return invalidArgument("invalid value " + quoted(value) + " for " + quoted(sample.name));
  }
  c.skipBlanks();
  if (c.done()) return sample;
  const std::string_view timestamp = c.token();
  if (!isTimestamp(timestamp)) {
    return invalidArgument("invalid timestamp " + quoted(timestamp) + " (integer ms)");
  }
  c.skipBlanks();
  if (!c.done()) return invalidArgument("unexpected " + c.found() + " after the timestamp");
  return sample;
}

bool hasLabels(const PrometheusSample& s, const std::vector<std::pair<std::string, std::string>>& match) {
  return std::all_of(match.begin(), match.end(), [&](const auto& m) {
    return std::find(s.labels.begin(), s.labels.end(), m) != s.labels.end();
  });
}

}  // namespace

namespace {

// Calls on_line(line_number, line) for each line that is neither blank nor a comment, leading
// blanks and a trailing \r removed; stops when it returns false.
template <typename OnLine>
void forEachSampleLine(std::string_view text, OnLine on_line) {
  int64_t line_number = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (!on_line(line_number, line.substr(first))) return;
  }
}

}  // namespace

Result<std::vector<PrometheusSample>> parsePrometheusText(std::string_view text) {
  std::vector<PrometheusSample> samples;
  Status error;
  forEachSampleLine(text, [&](int64_t line_number, std::string_view line) {
    Result<PrometheusSample> sample = parseSampleLine(line);
    if (!sample) {
      error = sample.status().withPrefix("metrics line " + std::to_string(line_number));
      return false;
    }
    samples.push_back(std::move(sample).value());
    return true;
  });
  if (!error) return error;
  return samples;
}

std::vector<PrometheusSample> parsePrometheusTextLenient(std::string_view text, size_t* bad_lines) {
  std::vector<PrometheusSample> samples;
  size_t bad = 0;
  forEachSampleLine(text, [&](int64_t, std::string_view line) {
    Result<PrometheusSample> sample = parseSampleLine(line);
    if (sample) {
      samples.push_back(std::move(sample).value());
    } else {
      ++bad;
    }
    return true;
  });
  if (bad_lines != nullptr) *bad_lines = bad;
  return samples;
}

double sumSamples(const std::vector<PrometheusSample>& samples, std::string_view name,
                  const std::vector<std::pair<std::string, std::string>>& match) {
  double sum = 0;
  for (const PrometheusSample& s : samples) {
    if (s.name == name && !std::isnan(s.value) && hasLabels(s, match)) sum += s.value;
  }
  return sum;
}

bool hasSample(const std::vector<PrometheusSample>& samples, std::string_view name) {
  const auto named = [&](const PrometheusSample& s) { return s.name == name; };
  return std::any_of(samples.begin(), samples.end(), named);
}

}  // namespace turbine
