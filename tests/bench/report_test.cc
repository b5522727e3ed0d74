#include "bench/report.h"

#include <gtest/gtest.h>

namespace turbine::bench {
namespace {

RequestResult ok(double start_s, double ttft, std::vector<double> itl, int32_t out) {
  RequestResult r;
  r.start_s = start_s;
  r.ttft_ms = ttft;
  r.itl_ms = std::move(itl);
  double e2e = ttft;
  for (double g : r.itl_ms) e2e += g;
  r.e2e_ms = e2e;
  r.chunks = static_cast<int32_t>(r.itl_ms.size()) + 1;
  r.completion_tokens = out;
  r.output_tokens_requested = out;
  r.input_tokens_requested = 10;
  return r;
}

TEST(Report, PercentilesAreNearestRank) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  Percentiles p = percentiles(v);
  EXPECT_EQ(p.count, 100);
  EXPECT_DOUBLE_EQ(p.p50, 50);
  EXPECT_DOUBLE_EQ(p.p90, 90);
  EXPECT_DOUBLE_EQ(p.p99, 99);
  EXPECT_DOUBLE_EQ(p.max, 100);
  EXPECT_DOUBLE_EQ(p.mean, 50.5);
  EXPECT_EQ(percentiles({}).count, 0);
}

TEST(Report, AggregatesGoodputAndErrors) {
  std::vector<RequestResult> rs = {ok(0.0, 100, {10, 10, 10}, 4), ok(0.5, 300, {10, 10, 10}, 4),
                                   ok(1.0, 100, {50, 50, 50}, 4)};
  RequestResult bad;
  bad.error_kind = "http_503";
  bad.error = "HTTP 503: busy";
  rs.push_back(bad);
  Aggregates a = aggregate(rs, 2.0, {.ttft_ms = 200, .itl_ms = 20});
  EXPECT_EQ(a.requests_ok, 3);
  EXPECT_EQ(a.requests_failed, 1);
  EXPECT_EQ(a.errors["http_503"], 1);
  EXPECT_EQ(a.requests_good, 1);  // #2 misses the TTFT SLO, #3 the ITL SLO
  EXPECT_DOUBLE_EQ(a.goodput_req_per_s, 0.5);
  EXPECT_DOUBLE_EQ(a.output_tokens_per_s, 6.0);
  EXPECT_EQ(a.itl_ms.count, 9);
  EXPECT_DOUBLE_EQ(a.tpot_ms.p50, 10);
  EXPECT_NE(summaryTable(a).find("http_503"), std::string::npos);
}

TEST(Report, TimelineConservesTokensAndTime) {
  std::vector<RequestResult> rs = {ok(0.0, 100, {100, 100, 100}, 8), ok(1.0, 500, {500}, 2)};
  Timeline t = timeline(rs, 2.0, 0.5);
  ASSERT_EQ(t.output_tokens_per_s.size(), 4u);
  double tokens = 0, busy = 0, done = 0;
  for (size_t i = 0; i < 4; ++i) {
    tokens += t.output_tokens_per_s[i] * t.bucket_s;
    busy += t.concurrency[i] * t.bucket_s;
    done += t.requests_finished[i] * t.bucket_s;
  }
  EXPECT_NEAR(tokens, 10.0, 1e-9);
  EXPECT_NEAR(busy, 0.4 + 1.0, 1e-9);  // in-flight seconds
  EXPECT_NEAR(done, 2.0, 1e-9);
  EXPECT_GT(timeline(rs, 2.0).output_tokens_per_s.size(), 10u);  // auto bucket: 0.05 s
}

}  // namespace
}  // namespace turbine::bench
