#include "planner/load_predictor.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

namespace turbine::planner {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

Result<PredictorKind> parsePredictorKind(std::string_view name) {
  using enum PredictorKind;
  for (PredictorKind kind : {kConstant, kMovingAverage, kHolt}) {
    if (name == predictorKindName(kind)) return kind;
  }
  return invalidArgument("unknown predictor \"" + std::string(name) +
                         "\" (accepted: constant, moving-average, holt)");
}

std::string_view predictorKindName(PredictorKind kind) {
  switch (kind) {
    case PredictorKind::kConstant: return "constant";
    case PredictorKind::kMovingAverage: return "moving-average";
    case PredictorKind::kHolt: return "holt";
  }
  return "unknown";
}

Status validatePredictorOptions(const PredictorOptions& options) {
  if (options.window < 1) {
    return invalidArgument("predictor window must be >= 1, got " + std::to_string(options.window));
  }
  if (!(options.alpha > 0 && options.alpha <= 1)) {  // also rejects NaN
    return invalidArgument("predictor alpha must be in (0, 1], got " + number(options.alpha));
  }
  if (!(options.beta >= 0 && options.beta <= 1)) {
    return invalidArgument("predictor beta must be in [0, 1], got " + number(options.beta));
  }
  return Status::ok();
}

LoadPredictor::LoadPredictor(const PredictorOptions& options) : options_(options) {
  assert(validatePredictorOptions(options).isOk());
}

bool LoadPredictor::observe(double value) {
  if (!std::isfinite(value)) return false;
  const double x = value > 0 ? value : 0.0;  // also turns -0 into 0
  ++observations_;
  last_ = x;
  switch (options_.kind) {
    case PredictorKind::kConstant: break;
    case PredictorKind::kMovingAverage:
      recent_.push_back(x);
      if (recent_.size() > static_cast<size_t>(std::max(options_.window, 1))) recent_.pop_front();
      break;
    case PredictorKind::kHolt: updateHolt(x); break;
  }
  return true;
}

void LoadPredictor::updateHolt(double x) {
  if (observations_ == 1) {
    level_ = x;
    trend_ = 0;
    return;
  }
  if (observations_ == 2) {
    trend_ = x - level_;
    level_ = x;
    return;
  }
  const double a = options_.alpha, b = options_.beta;
  const double level = a * x + (1 - a) * (level_ + trend_);
  trend_ = b * (level - level_) + (1 - b) * trend_;
  level_ = level;
  // Only values near the largest double can overflow the state; start again from this one.
  if (!std::isfinite(level_) || !std::isfinite(trend_)) {
    level_ = x;
    trend_ = 0;
  }
}

std::optional<double> LoadPredictor::predict() const {
  if (observations_ == 0) return std::nullopt;
  double p = last_;
  switch (options_.kind) {
    case PredictorKind::kConstant: break;
    case PredictorKind::kMovingAverage:
      p = std::accumulate(recent_.begin(), recent_.end(), 0.0);
      p /= static_cast<double>(recent_.size());
      break;
    case PredictorKind::kHolt: p = level_ + trend_; break;
  }
  // The state is finite, so p is finite or +-inf (a sum that overflowed), never NaN.
  return std::clamp(p, 0.0, std::numeric_limits<double>::max());
}

}  // namespace turbine::planner
