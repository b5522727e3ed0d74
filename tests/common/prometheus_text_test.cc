// parsePrometheusText on what our frontend renders, the corners of the format, errors that name
// the line, and random input that must never crash.
#include "common/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

namespace turbine {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view kFrontendBody =
    "# HELP turbine_time_to_first_token_seconds Time from request arrival to first token.\n"
    "# TYPE turbine_time_to_first_token_seconds histogram\n"
    "turbine_time_to_first_token_seconds_bucket{le=\"0.001\"} 0\n"
    "turbine_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"
    "turbine_time_to_first_token_seconds_sum 0.123456\n"
    "turbine_time_to_first_token_seconds_count 3\n"
    "\n"
    "# TYPE turbine_http_requests_total counter\n"
    "turbine_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 12\n"
    "turbine_http_requests_total{endpoint=\"/v1/completions\",status=\"429\"} 2\n"
    "turbine_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 7\n"
    "turbine_router_requests_total{model=\"m\",worker=\"1\"} 5\n"
    "turbine_prompt_tokens_total 1234\n";

std::vector<PrometheusSample> parseOk(std::string_view text) {
  auto r = parsePrometheusText(text);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? std::move(r).value() : std::vector<PrometheusSample>{};
}

// The error names line `line` and says `what`.
void expectError(std::string_view text, int line, std::string_view what) {
  auto r = parsePrometheusText(text);
  ASSERT_FALSE(r.isOk()) << "parsed: " << text;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = r.status().message();
  EXPECT_EQ(m.rfind("metrics line " + std::to_string(line) + ": ", 0), 0u) << m;
  EXPECT_NE(m.find(what), std::string::npos) << m;
}

TEST(PrometheusTextTest, ParsesTheFrontendBody) {
  const auto s = parseOk(kFrontendBody);
  ASSERT_EQ(s.size(), 9u);
  EXPECT_EQ(s[0].name, "turbine_time_to_first_token_seconds_bucket");
  EXPECT_EQ(s[0].labels, (Labels{{"le", "0.001"}}));
  EXPECT_EQ(s[0].value, 0);
  EXPECT_EQ(s[1].labels, (Labels{{"le", "+Inf"}}));
  EXPECT_EQ(s[1].value, 3);
  EXPECT_EQ(s[2].name, "turbine_time_to_first_token_seconds_sum");
  EXPECT_TRUE(s[2].labels.empty());
  EXPECT_DOUBLE_EQ(s[2].value, 0.123456);
  EXPECT_EQ(s[4].name, "turbine_http_requests_total");
  EXPECT_EQ(s[4].labels, (Labels{{"endpoint", "/v1/completions"}, {"status", "200"}}));
  EXPECT_EQ(s[4].value, 12);
  EXPECT_EQ(s[7].labels, (Labels{{"model", "m"}, {"worker", "1"}}));
  EXPECT_EQ(s[8].name, "turbine_prompt_tokens_total");
  EXPECT_EQ(s[8].value, 1234);
}

TEST(PrometheusTextTest, EmptyAndCommentOnlyBodiesHaveNoSamples) {
  EXPECT_TRUE(parseOk("").empty());
  EXPECT_TRUE(parseOk("\n\n  \t\n# HELP x y\n#\n   # indented comment {{{ \"\n").empty());
}

TEST(PrometheusTextTest, LabelValueEscapes) {
  const auto s = parseOk(R"(m{path="C:\\dir",q="say \"hi\"",nl="a\nb",odd="{}=,#"} 1)");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].labels,
            (Labels{{"path", "C:\\dir"}, {"q", "say \"hi\""}, {"nl", "a\nb"}, {"odd", "{}=,#"}}));
  EXPECT_EQ(parseOk(R"(m{e=""} 1)")[0].labels, (Labels{{"e", ""}}));
}

TEST(PrometheusTextTest, SpecialAndScientificValues) {
  const auto s = parseOk(
      "a +Inf\nb -Inf\nc Inf\nd NaN\ne 1.5e-05\nf -2\ng 1E3\nh .5\ni 0x10\nj 1e999\n");
  ASSERT_EQ(s.size(), 10u);
  EXPECT_TRUE(std::isinf(s[0].value) && s[0].value > 0);
  EXPECT_TRUE(std::isinf(s[1].value) && s[1].value < 0);
  EXPECT_TRUE(std::isinf(s[2].value) && s[2].value > 0);
  EXPECT_TRUE(std::isnan(s[3].value));
  EXPECT_DOUBLE_EQ(s[4].value, 1.5e-05);
  EXPECT_EQ(s[5].value, -2);
  EXPECT_EQ(s[6].value, 1000);
  EXPECT_EQ(s[7].value, 0.5);
  EXPECT_EQ(s[8].value, 16);  // strtod reads hex floats
  EXPECT_TRUE(std::isinf(s[9].value));
}

TEST(PrometheusTextTest, TimestampsAreReadAndIgnored) {
  const auto s = parseOk("m 1 1700000000000\nn{a=\"b\"} 2.5 -5\t\no 3 0  \n");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].value, 1);
  EXPECT_EQ(s[1].value, 2.5);
  EXPECT_EQ(s[2].value, 3);
  expectError("m 1 12.5\n", 1, "invalid timestamp \"12.5\"");
  expectError("m 1 99999999999999999999\n", 1, "invalid timestamp");
  expectError("m 1 2 3\n", 1, "after the timestamp");
}

TEST(PrometheusTextTest, WhitespaceCommasAndLineEndings) {
  const auto s = parseOk(
      "  vllm:num_requests_running{a=\"1\",} 4\r\n"
      "\tm\t{ a = \"x\" , b=\"y\" , }\t5\r\n"
      "n{} 6\n"
      "o{a=\"z\"}7\n"
      "p 8");  // no final newline
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0].name, "vllm:num_requests_running");
  EXPECT_EQ(s[0].labels, (Labels{{"a", "1"}}));
  EXPECT_EQ(s[0].value, 4);
  EXPECT_EQ(s[1].labels, (Labels{{"a", "x"}, {"b", "y"}}));
  EXPECT_EQ(s[1].value, 5);
  EXPECT_TRUE(s[2].labels.empty());
  EXPECT_EQ(s[3].value, 7);
  EXPECT_EQ(s[4].name, "p");
  EXPECT_EQ(s[4].value, 8);
}

TEST(PrometheusTextTest, SumSamplesWithAndWithoutMatch) {
  const auto s = parseOk(kFrontendBody);
  const std::string_view http = "turbine_http_requests_total";
  EXPECT_EQ(sumSamples(s, http), 21);
  EXPECT_EQ(sumSamples(s, http, {{"status", "200"}}), 19);
  EXPECT_EQ(sumSamples(s, http, {{"endpoint", "/v1/completions"}}), 14);
  EXPECT_EQ(sumSamples(s, http, {{"status", "200"}, {"endpoint", "/v1/completions"}}), 12);
  EXPECT_EQ(sumSamples(s, http, {{"status", "500"}}), 0);
  EXPECT_EQ(sumSamples(s, http, {{"model", "m"}}), 0);  // a label the samples do not have
  EXPECT_EQ(sumSamples(s, "turbine_prompt_tokens_total"), 1234);
  EXPECT_EQ(sumSamples(s, "turbine_absent_total"), 0);
  EXPECT_TRUE(hasSample(s, "turbine_router_requests_total"));
  EXPECT_FALSE(hasSample(s, "turbine_router_requests"));  // names match whole

  const auto nan = parseOk("g{w=\"1\"} 2\ng{w=\"2\"} NaN\ng{w=\"3\"} 3\n");
  EXPECT_EQ(sumSamples(nan, "g"), 5);
  EXPECT_EQ(sumSamples(nan, "g", {{"w", "2"}}), 0);
}

TEST(PrometheusTextTest, ErrorsNameTheLine) {
  expectError("a 1\nm{a=\"b} 1\n", 2, "unterminated label value");
  expectError("m{a=\"b\\", 1, "unterminated label value");  // ends inside an escape
  expectError("# HELP m x\n# TYPE m gauge\n\nm{a=\"b\"}\n", 4, "missing value for \"m\"");
  expectError("m\n", 1, "missing value");
  expectError("m   \r\n", 1, "missing value");
  expectError("a 1\r\nb 2\r\nm 12abc\r\n", 3, "invalid value \"12abc\"");
  expectError("m 1\n1m 2\n", 2, "metric name must start");
  expectError("{a=\"b\"} 2\n", 1, "metric name must start");
  expectError("m-x 2\n", 1, "unexpected '-' in metric name \"m\"");
  expectError("m{a\"b\"} 1\n", 1, "expected '=' after label \"a\"");
  expectError("m{a=b} 1\n", 1, "expected '\"'");
  expectError("m{a=\"b\" c=\"d\"} 1\n", 1, "expected ',' or '}'");
  expectError("m{1a=\"b\"} 1\n", 1, "expected a label name");
  expectError("m{a=\"b\",,} 1\n", 1, "expected a label name");
  expectError("m{a=\"b\",\n", 1, "unterminated '{'");
  expectError("ok 1\nm{", 2, "unterminated '{'");
  expectError("m{a=\"\\t\"} 1\n", 1, "invalid escape");
  expectError("m{a=\"1\",a=\"2\"} 1\n", 1, "label \"a\" written twice");
  expectError("m \v5\n", 1, "invalid value");  // strtod would skip the \v
  expectError("m{a=\"b\"}} 1\n", 1, "invalid value \"}\"");
}

TEST(PrometheusTextTest, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  int ok = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text(rng() % 200, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 256);
    auto r = parsePrometheusText(text);
    ok += r.isOk();
    if (!r.isOk()) {
      EXPECT_EQ(r.status().message().rfind("metrics line ", 0), 0u);
    }
  }
  EXPECT_LT(ok, 3000);
}

TEST(PrometheusTextTest, MutatedBodiesParseOrFailCleanly) {
  std::mt19937 rng(42);
  constexpr std::string_view kChars = "{}\"=\\ \n\t\r,#";
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string text(kFrontendBody);
    for (int edits = 1 + static_cast<int>(rng() % 6); edits > 0 && !text.empty(); --edits) {
      const size_t at = rng() % text.size();
      if (rng() % 2) {
        text.erase(at, 1 + rng() % 3);
      } else {
        text.insert(at, 1, kChars[rng() % kChars.size()]);
      }
    }
    auto r = parsePrometheusText(text);
    if (!r.isOk()) {
      ++failed;
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      continue;
    }
    ++ok;
    for (const PrometheusSample& s : r.value()) EXPECT_FALSE(s.name.empty());
  }
  // Both outcomes occur, so the mutations reach the parser's paths.
  EXPECT_GT(ok, 100);
  EXPECT_GT(failed, 100);
}

}  // namespace
}  // namespace turbine
