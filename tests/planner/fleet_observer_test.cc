// From two scrapes of a frontend's /metrics to the planner's observation.
#include "planner/fleet_observer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace turbine::planner {
namespace {

std::string body(double admitted, double refused, double prompt, double generated, double ttft_sum,
                 double ttft_n, double itl_sum, double itl_n, double waiting) {
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "# TYPE turbine_time_to_first_token_seconds histogram\n"
                "turbine_time_to_first_token_seconds_bucket{le=\"+Inf\"} %g\n"
                "turbine_time_to_first_token_seconds_sum %g\n"
                "turbine_time_to_first_token_seconds_count %g\n"
                "turbine_inter_token_latency_seconds_sum %g\n"
                "turbine_inter_token_latency_seconds_count %g\n"
                "turbine_prompt_tokens_total %g\nturbine_generation_tokens_total %g\n"
                "turbine_requests_admitted_total %g\nturbine_requests_refused_total %g\n"
                "turbine_num_requests_waiting %g\n"
                "turbine_fleet_workers{model=\"a\"} 3\nturbine_fleet_workers{model=\"b\"} 2\n"
                "turbine_fleet_prefill_workers{model=\"a\"} 1\n",
                ttft_n, ttft_sum, ttft_n, itl_sum, itl_n, prompt, generated, admitted, refused, waiting);
  return buf;
}

TEST(FleetObserverTest, TheDifferenceOfTwoScrapesIsTheInterval) {
  auto a = parseFrontendMetrics(body(10, 1, 10000, 2000, 5, 10, 2, 200, 0), "a");
  auto b = parseFrontendMetrics(body(30, 3, 50000, 6000, 15, 30, 6, 500, 4), "a");
  ASSERT_TRUE(a.isOk() && b.isOk()) << a.status().toString();
  EXPECT_EQ(a->workers, 3);
  EXPECT_EQ(a->prefill_workers, 1);
  const Observation o = observationBetween(*a, *b, 10, FleetMode::kAgg);
  EXPECT_DOUBLE_EQ(o.interval_s, 10);
  EXPECT_DOUBLE_EQ(o.requests, 22);  // 20 admitted + 2 refused
  EXPECT_DOUBLE_EQ(o.mean_input_tokens, 2000);
  EXPECT_DOUBLE_EQ(o.mean_output_tokens, 200);
  EXPECT_DOUBLE_EQ(o.mean_ttft_ms, 500);  // 10 s over 20 first tokens
  EXPECT_NEAR(o.mean_itl_ms, 4000.0 / 300, 1e-9);
  EXPECT_DOUBLE_EQ(o.waiting, 4);
  EXPECT_EQ(o.serving.agg, 3);
  const Observation d = observationBetween(*a, *b, 10, FleetMode::kDisagg);
  EXPECT_EQ(d.serving.decode, 3);
  EXPECT_EQ(d.serving.prefill, 1);
  EXPECT_EQ(d.serving.agg, 0);
  // Every model: 3 + 2.
  EXPECT_EQ(parseFrontendMetrics(body(0, 0, 0, 0, 0, 0, 0, 0, 0), "")->workers, 5);
}

TEST(FleetObserverTest, AQuietIntervalAndARestartedFrontend) {
  auto a = parseFrontendMetrics(body(10, 0, 10000, 2000, 5, 10, 2, 200, 0), "a");
  const Observation quiet = observationBetween(*a, *a, 5, FleetMode::kAgg);
  EXPECT_EQ(quiet.requests, 0);
  EXPECT_TRUE(std::isnan(quiet.mean_ttft_ms));
  EXPECT_TRUE(std::isnan(quiet.mean_itl_ms));
  auto restarted = parseFrontendMetrics(body(4, 0, 4000, 400, 1, 4, 1, 40, 0), "a");
  const Observation o = observationBetween(*a, *restarted, 5, FleetMode::kAgg);
  EXPECT_DOUBLE_EQ(o.requests, 4);
  EXPECT_DOUBLE_EQ(o.mean_input_tokens, 1000);
  EXPECT_DOUBLE_EQ(o.mean_ttft_ms, 250);
}

TEST(FleetObserverTest, NotAFrontendIsAnError) {
  EXPECT_EQ(parseFrontendMetrics("vllm:num_requests_running 1\n", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(parseFrontendMetrics("turbine_requests_admitted_total {", "").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace turbine::planner
