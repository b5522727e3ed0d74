// LoadPredictor: predicts one load number for the planner's next adjustment interval (the request
// rate, a mean input or output length) from the values observed once per interval so far.
//
//   constant:       the last observation.
//   moving-average: the mean of the last `window` observations (of all of them while fewer).
//   holt:           Holt's linear trend (double exponential smoothing), one interval ahead:
//                     x_1:      level = x_1, trend = 0
//                     x_2:      level = x_2, trend = x_2 - x_1
//                     x_t, t>2: level = alpha * x_t + (1 - alpha) * (level + trend)
//                               trend = beta * (level_t - level_{t-1}) + (1 - beta) * trend
//                     predict:  level + trend
//                   (x_2's step is the recursion started from level_1 = x_1, trend_1 = x_2 - x_1,
//                   so it predicts an exact linear ramp exactly from the second value on, for any
//                   alpha and beta; a constant series predicts that constant.)
//
// Contract: non-finite observations are ignored; negative ones count as 0. A prediction exists
// after the first observation, and is finite and >= 0 (a falling trend that would cross zero
// predicts 0; a sum past the largest double predicts the largest double).
// Thread safety: not thread-safe; one owner observes and predicts.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>

#include "common/status.h"

namespace turbine::planner {

enum class PredictorKind { kConstant, kMovingAverage, kHolt };

// "constant" | "moving-average" | "holt"; InvalidArgument naming the accepted values otherwise.
Result<PredictorKind> parsePredictorKind(std::string_view name);
std::string_view predictorKindName(PredictorKind kind);

struct PredictorOptions {
  PredictorKind kind = PredictorKind::kConstant;
  int32_t window = 5;  // moving-average: observations averaged, >= 1
  double alpha = 0.5;  // holt: level smoothing, (0, 1]; 1 follows the last value
  double beta = 0.3;   // holt: trend smoothing, [0, 1]; 0 keeps the initial trend
};

// InvalidArgument naming the field out of range.
Status validatePredictorOptions(const PredictorOptions& options);

class LoadPredictor {
 public:
  explicit LoadPredictor(const PredictorOptions& options);  // options already validated

  // Adds an observation; returns false (and ignores it) when it is NaN or infinite.
  bool observe(double value);
  // The next interval's value; nullopt before the first observation.
  std::optional<double> predict() const;
  int64_t observations() const { return observations_; }

 private:
  void updateHolt(double x);

  PredictorOptions options_;
  int64_t observations_ = 0;
  double last_ = 0;            // the last observation (after clamping)
  std::deque<double> recent_;  // moving-average: the last `window` observations
  double level_ = 0;           // holt
  double trend_ = 0;           // holt: per interval
};

}  // namespace turbine::planner
