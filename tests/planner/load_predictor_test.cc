// LoadPredictor: each kind's formula, Holt's exactness on ramps and constants, and the contract
// (non-finite ignored, negative clamped, predictions finite and >= 0).
#include "planner/load_predictor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace turbine::planner {
namespace {

PredictorOptions holt(double alpha, double beta) {
  PredictorOptions o;
  o.kind = PredictorKind::kHolt;
  o.alpha = alpha;
  o.beta = beta;
  return o;
}

PredictorOptions movingAverage(int32_t window) {
  PredictorOptions o;
  o.kind = PredictorKind::kMovingAverage;
  o.window = window;
  return o;
}

TEST(LoadPredictorTest, KindNamesRoundTrip) {
  using enum PredictorKind;
  for (PredictorKind kind : {kConstant, kMovingAverage, kHolt}) {
    auto parsed = parsePredictorKind(predictorKindName(kind));
    ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(predictorKindName(PredictorKind::kMovingAverage), "moving-average");
  for (std::string_view bad : {"", "Holt", "moving_average", "average", "constant "}) {
    auto parsed = parsePredictorKind(bad);
    ASSERT_FALSE(parsed.isOk()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("constant, moving-average, holt"), std::string::npos);
  }
}

TEST(LoadPredictorTest, ValidateNamesTheField) {
  EXPECT_TRUE(validatePredictorOptions({}).isOk());
  EXPECT_TRUE(validatePredictorOptions(movingAverage(1)).isOk());
  EXPECT_TRUE(validatePredictorOptions(holt(1.0, 0.0)).isOk());
  EXPECT_TRUE(validatePredictorOptions(holt(0.01, 1.0)).isOk());
  auto expectBad = [](const PredictorOptions& o, std::string_view field) {
    const Status s = validatePredictorOptions(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  expectBad(movingAverage(0), "window");
  expectBad(movingAverage(-3), "window");
  expectBad(holt(0.0, 0.3), "alpha");
  expectBad(holt(1.5, 0.3), "alpha");
  expectBad(holt(std::nan(""), 0.3), "alpha");
  expectBad(holt(0.5, -0.1), "beta");
  expectBad(holt(0.5, 2.0), "beta");
}

TEST(LoadPredictorTest, NothingToPredictBeforeTheFirstObservation) {
  for (const auto& o : {PredictorOptions{}, movingAverage(3), holt(0.5, 0.3)}) {
    LoadPredictor p(o);
    EXPECT_FALSE(p.predict().has_value());
    EXPECT_EQ(p.observations(), 0);
  }
}

TEST(LoadPredictorTest, ConstantPredictsTheLastObservation) {
  LoadPredictor p(PredictorOptions{});
  for (double x : {5.0, 1.0, 42.5}) {
    EXPECT_TRUE(p.observe(x));
    EXPECT_EQ(p.predict(), x);
  }
  EXPECT_EQ(p.observations(), 3);
}

TEST(LoadPredictorTest, MovingAverageOverTheWindow) {
  LoadPredictor p(movingAverage(3));
  const double xs[] = {1, 2, 3, 10, 20};
  const double want[] = {1, 1.5, 2, 5, 11};  // fewer than 3 at the start, then the last 3
  for (int i = 0; i < 5; ++i) {
    p.observe(xs[i]);
    EXPECT_DOUBLE_EQ(*p.predict(), want[i]) << i;
  }
  LoadPredictor one(movingAverage(1));
  one.observe(4);
  one.observe(9);
  EXPECT_EQ(one.predict(), 9.0);
}

TEST(LoadPredictorTest, HoltPredictsALinearRampExactly) {
  for (double alpha : {0.05, 0.3, 0.5, 0.9, 1.0}) {
    for (double beta : {0.0, 0.1, 0.3, 0.7, 1.0}) {
      LoadPredictor p(holt(alpha, beta));
      for (int t = 0; t < 30; ++t) {
        p.observe(3.0 + 2.0 * t);
        if (t == 0) continue;  // one value has no trend yet
        EXPECT_NEAR(*p.predict(), 3.0 + 2.0 * (t + 1), 1e-9) << alpha << " " << beta << " " << t;
      }
    }
  }
}

TEST(LoadPredictorTest, HoltPredictsAConstantSeries) {
  for (double alpha : {0.1, 0.5, 1.0}) {
    for (double beta : {0.0, 0.5, 1.0}) {
      LoadPredictor p(holt(alpha, beta));
      for (int t = 0; t < 10; ++t) {
        p.observe(7.25);
        EXPECT_NEAR(*p.predict(), 7.25, 1e-9);
      }
    }
  }
}

TEST(LoadPredictorTest, HoltFollowsARampBetterThanTheMovingAverage) {
  // A rising request rate with noise: the moving average lags by (window + 1) / 2 intervals of
  // growth; Holt's trend removes most of that lag.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(-5, 5);
  LoadPredictor h(holt(0.5, 0.3)), ma(movingAverage(5));
  double holt_error = 0, ma_error = 0;
  for (int t = 0; t < 60; ++t) {
    const double truth = 100.0 + 10.0 * t;
    if (t >= 10) {  // score the one-ahead predictions once both have warmed up
      holt_error += std::abs(*h.predict() - truth);
      ma_error += std::abs(*ma.predict() - truth);
    }
    const double x = truth + noise(rng);
    h.observe(x);
    ma.observe(x);
  }
  EXPECT_LT(holt_error, ma_error / 3) << holt_error << " vs " << ma_error;
}

TEST(LoadPredictorTest, NonFiniteObservationsAreIgnored) {
  for (const auto& o : {PredictorOptions{}, movingAverage(3), holt(0.5, 0.3)}) {
    LoadPredictor p(o);
    EXPECT_FALSE(p.observe(std::numeric_limits<double>::quiet_NaN()));
    EXPECT_FALSE(p.predict().has_value());
    p.observe(4);
    p.observe(6);
    const double before = *p.predict();
    EXPECT_FALSE(p.observe(std::numeric_limits<double>::infinity()));
    EXPECT_FALSE(p.observe(-std::numeric_limits<double>::infinity()));
    EXPECT_FALSE(p.observe(std::numeric_limits<double>::quiet_NaN()));
    EXPECT_EQ(p.observations(), 2);
    EXPECT_EQ(*p.predict(), before);
  }
}

TEST(LoadPredictorTest, NegativeObservationsCountAsZero) {
  LoadPredictor c(PredictorOptions{});
  EXPECT_TRUE(c.observe(-3));
  EXPECT_EQ(c.predict(), 0.0);
  EXPECT_FALSE(std::signbit(*c.predict()));
  LoadPredictor ma(movingAverage(2));
  ma.observe(-3);
  ma.observe(3);
  EXPECT_EQ(ma.predict(), 1.5);
}

TEST(LoadPredictorTest, HoltNeverPredictsBelowZeroOnAFallingRamp) {
  LoadPredictor p(holt(0.5, 0.3));
  for (double x : {10.0, 7.0, 4.0, 1.0}) p.observe(x);
  EXPECT_EQ(p.predict(), 0.0);  // 1 - 3 clamped
  for (int t = 0; t < 10; ++t) {
    p.observe(-2.0 - 3.0 * t);  // the ramp goes on below zero: observed as 0
    EXPECT_GE(*p.predict(), 0.0);
  }
}

TEST(LoadPredictorTest, PredictionsStayFiniteAtExtremes) {
  constexpr double kMax = std::numeric_limits<double>::max();
  for (const auto& o : {PredictorOptions{}, movingAverage(3), holt(0.5, 0.3), holt(0.1, 1.0)}) {
    LoadPredictor p(o);
    for (double x : {0.0, kMax, kMax, 0.0, kMax, kMax, kMax, 1.0, 0.0}) {
      p.observe(x);
      EXPECT_TRUE(std::isfinite(*p.predict()));
      EXPECT_GE(*p.predict(), 0.0);
    }
  }
}

}  // namespace
}  // namespace turbine::planner
