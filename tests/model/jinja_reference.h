// Shared by the Jinja tests: the reference renderer (tests/model/chat_template_reference.py on
// Debian's python3-jinja2, set up as transformers sets it up) and the fixed "now" both sides use
// for strftime_now.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace turbine::model::jinja_ref {

inline constexpr const char* kPython = "/usr/bin/python3";
inline constexpr const char* kNow = "2024-07-26T12:34:56";  // what fixedNow() returns

inline std::tm fixedNow() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  tm.tm_min = 34;
  tm.tm_sec = 56;
  std::time_t t = timegm(&tm);
  gmtime_r(&t, &tm);
  return tm;
}

// Runs the reference renderer on `cases` (a JSON array of {template, context...}); nullopt, with
// the reason in *why, when it cannot run (the caller skips).
inline std::optional<nlohmann::ordered_json> runReference(const nlohmann::ordered_json& cases,
                                                          std::string* why) {
  if (std::system((std::string(kPython) + " -c 'import jinja2' >/dev/null 2>&1").c_str()) != 0) {
    *why = "/usr/bin/python3 with jinja2 (python3-jinja2) is not available";
    return std::nullopt;
  }
  char path[] = "/tmp/turbine_jinja_cases_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    *why = "cannot create a temporary file";
    return std::nullopt;
  }
  close(fd);
  std::ofstream(path) << cases.dump();
  std::string cmd = std::string(kPython) + " " TURBINE_SOURCE_DIR
                    "/tests/model/chat_template_reference.py < " + path;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[65536];
  size_t n;
  while (pipe && (n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int rc = pipe ? pclose(pipe) : -1;
  std::remove(path);
  if (rc != 0) {
    *why = "reference renderer failed (exit " + std::to_string(rc) + ")";
    return std::nullopt;
  }
  return nlohmann::ordered_json::parse(out);
}

}  // namespace turbine::model::jinja_ref
