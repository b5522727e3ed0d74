// Fitting a timing profile to step times: exact recovery from a known profile's own steps, a close
// one under noise, non-negative terms, and refusal of too few or degenerate samples.
#include "mocker/profile_fit.h"

#include <gtest/gtest.h>

#include <random>

namespace turbine::mocker {
namespace {

std::vector<StepSample> shapes() {
  std::vector<StepSample> out;
  for (double n : {32.0, 128.0, 512.0, 2048.0}) {
    for (double start : {0.0, 1024.0}) out.push_back({n, n * (start + n / 2), 0, 0, 0});
  }
  for (double b : {1.0, 4.0, 16.0, 64.0}) {
    for (double ctx : {128.0, 2048.0}) out.push_back({0, 0, b, b * ctx, 0});
  }
  out.push_back({256, 256 * 128.0, 8, 8 * 512.0, 0});  // a mixed step
  return out;
}

TEST(ProfileFitTest, RecoversTheProfileThatMadeTheSteps) {
  TimingProfile truth;
  truth.step_base_us = 4200;
  truth.prefill_us_per_token = 35;
  truth.attention_us_per_pair = 0.0012;
  truth.decode_us_per_seq = 22;
  truth.kv_read_us_per_token = 0.05;
  auto samples = shapes();
  for (auto& s : samples) s.us = predictStepUs(truth, s);
  auto fit = fitTimingProfile(samples);
  ASSERT_TRUE(fit.isOk()) << fit.status().toString();
  EXPECT_NEAR(fit->profile.step_base_us, 4200, 1e-6 * 4200);
  EXPECT_NEAR(fit->profile.prefill_us_per_token, 35, 1e-6 * 35);
  EXPECT_NEAR(fit->profile.attention_us_per_pair, 0.0012, 1e-6 * 0.0012);
  EXPECT_NEAR(fit->profile.decode_us_per_seq, 22, 1e-6 * 22);
  EXPECT_NEAR(fit->profile.kv_read_us_per_token, 0.05, 1e-6 * 0.05);
  EXPECT_LT(fit->max_relative_error, 1e-9);
  // With 3% noise: within a few percent on the terms that carry the time.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(1.0, 0.03);
  for (auto& s : samples) s.us = predictStepUs(truth, s) * noise(rng);
  auto noisy = fitTimingProfile(samples);
  ASSERT_TRUE(noisy.isOk());
  EXPECT_NEAR(noisy->profile.prefill_us_per_token, 35, 0.1 * 35);
  EXPECT_NEAR(noisy->profile.step_base_us, 4200, 0.1 * 4200);
  EXPECT_LT(noisy->mean_relative_error, 0.05);
}

TEST(ProfileFitTest, TermsStayNonNegative) {
  // Steps that cost the same whatever their decode count: a fit might go slightly negative on
  // the decode term; it is dropped instead.
  auto samples = shapes();
  for (auto& s : samples) s.us = 1000 + 10 * s.prefill_tokens - 0.5 * s.decodes;
  auto fit = fitTimingProfile(samples);
  ASSERT_TRUE(fit.isOk());
  EXPECT_EQ(fit->profile.decode_us_per_seq, 0);
  EXPECT_GE(fit->profile.kv_read_us_per_token, 0);
  EXPECT_GE(fit->profile.attention_us_per_pair, 0);
  EXPECT_NEAR(fit->profile.prefill_us_per_token, 10, 0.5);
}

TEST(ProfileFitTest, TooFewOrDegenerateSamplesAreRefused) {
  EXPECT_FALSE(fitTimingProfile({{10, 10, 0, 0, 100}}).isOk());
  std::vector<StepSample> same(6, StepSample{64, 64 * 32.0, 0, 0, 500});  // one shape, five terms
  EXPECT_FALSE(fitTimingProfile(same).isOk());
  auto samples = shapes();
  for (auto& s : samples) s.us = 100;
  samples[0].us = -1;
  EXPECT_FALSE(fitTimingProfile(samples).isOk());
}

}  // namespace
}  // namespace turbine::mocker
