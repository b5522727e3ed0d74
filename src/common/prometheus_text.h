// Prometheus text exposition format 0.0.4: parse a /metrics body into samples, strictly, so that
// the planner acts on the numbers a frontend or worker really reported and a malformed line is an
// error that names the line, not a silent zero (or leniently, line by line, for other engines).
//
// Grammar accepted, one sample per line (lines end in \n; a final line without one and \r\n are
// fine; spaces and tabs separate tokens, and may lead or trail a line):
//   name [{label="value",...}] value [timestamp]
//   name:  [a-zA-Z_:][a-zA-Z0-9_:]*          label name: [a-zA-Z_][a-zA-Z0-9_]*
//   label value: double-quoted, escapes \\ \" \n (any other escape is an error); a trailing comma
//          before '}' is allowed; a label name written twice on one line is an error.
//   value: anything strtod accepts (1.5e-05, inf, 0x1p3; 1e999 reads as +Inf), and "+Inf",
//          "-Inf", "Inf", "NaN". timestamp: an integer (milliseconds), checked and ignored.
// Blank lines and '#' lines (HELP, TYPE, comments) are skipped; their content is not checked.
// Errors: InvalidArgument "metrics line N: <what is wrong>" (N 1-based), for the first bad line.
// Any byte string is safe input: the parser returns a result or an error, never crashes.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace turbine {

struct PrometheusSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in the order written
  double value = 0;
};

Result<std::vector<PrometheusSample>> parsePrometheusText(std::string_view text);

// The samples of every well-formed line, skipping (and counting in *bad_lines when given) the
// others: for engines whose exposition Turbine does not control (vLLM, SGLang), where one odd
// line must not hide the rest.
std::vector<PrometheusSample> parsePrometheusTextLenient(std::string_view text, size_t* bad_lines = nullptr);

// Sum of the values of the samples called `name` whose labels include every (key, value) of
// `match` (an empty match takes every sample of that name). 0 when none match. NaN values are
// skipped; infinities are summed like any other value.
double sumSamples(const std::vector<PrometheusSample>& samples, std::string_view name,
                  const std::vector<std::pair<std::string, std::string>>& match = {});

// Whether any sample is called `name` (whatever its labels and value).
bool hasSample(const std::vector<PrometheusSample>& samples, std::string_view name);

}  // namespace turbine
