#include "mocker/profile_fit.h"

#include <array>
#include <cmath>

namespace turbine::mocker {

namespace {

constexpr int kTerms = 5;
using Row = std::array<double, kTerms>;

Row features(const StepSample& s) { return {1.0, s.prefill_tokens, s.attention_pairs, s.decodes, s.decode_context}; }

// Least squares of the relative error (each step weighted by 1 / its time, so a 200 us decode step
// counts as much as a 20 ms prefill) over the active terms: normal equations, each column scaled to
// unit size so the pairs term, ~1e6 times the others, does not swamp the elimination. False when
// singular.
bool solve(const std::vector<StepSample>& samples, const std::array<bool, kTerms>& active, Row& coef) {
  Row scale{};
  for (const auto& s : samples) {
    const Row x = features(s);
    for (int j = 0; j < kTerms; ++j) scale[j] = std::max(scale[j], std::abs(x[j]));
  }
  std::array<std::array<double, kTerms + 1>, kTerms> m{};
  for (const auto& s : samples) {
    Row x = features(s);
    for (int j = 0; j < kTerms; ++j) x[j] = active[j] && scale[j] > 0 ? x[j] / scale[j] / s.us : 0;
    for (int i = 0; i < kTerms; ++i) {
      for (int j = 0; j < kTerms; ++j) m[i][j] += x[i] * x[j];
      m[i][kTerms] += x[i];  // the target, us / us
    }
  }
  for (int i = 0; i < kTerms; ++i) {
    if (!active[i] || scale[i] == 0) m[i][i] = 1, m[i][kTerms] = 0;  // pins the term at 0
  }
  for (int c = 0; c < kTerms; ++c) {  // Gauss-Jordan with partial pivoting
    int pivot = c;
    for (int r = c + 1; r < kTerms; ++r) {
      if (std::abs(m[r][c]) > std::abs(m[pivot][c])) pivot = r;
    }
    if (std::abs(m[pivot][c]) < 1e-12) return false;
    std::swap(m[c], m[pivot]);
    for (int r = 0; r < kTerms; ++r) {
      if (r == c) continue;
      const double f = m[r][c] / m[c][c];
      for (int k = c; k <= kTerms; ++k) m[r][k] -= f * m[c][k];
    }
  }
  for (int j = 0; j < kTerms; ++j) coef[j] = active[j] && scale[j] > 0 ? m[j][kTerms] / m[j][j] / scale[j] : 0;
  return true;
}

}  // namespace

double predictStepUs(const TimingProfile& p, const StepSample& s) {
  return p.step_base_us + p.prefill_us_per_token * s.prefill_tokens + p.attention_us_per_pair * s.attention_pairs +
         p.decode_us_per_seq * s.decodes + p.kv_read_us_per_token * s.decode_context;
}

Result<ProfileFit> fitTimingProfile(const std::vector<StepSample>& samples, const TimingProfile& base) {
  if (samples.size() < kTerms) {
    return invalidArgument("need at least " + std::to_string(kTerms) + " measured steps to fit a profile");
  }
  for (const auto& s : samples) {
    const Row x = features(s);
    for (double v : x) {
      if (!std::isfinite(v) || v < 0) return invalidArgument("a step sample has a negative or non-finite term");
    }
    if (!std::isfinite(s.us) || s.us <= 0) return invalidArgument("a step sample's time must be > 0 us");
  }
  std::array<bool, kTerms> active;
  active.fill(true);
  Row coef{};
  for (;;) {  // drop the most negative term until none is
    if (!solve(samples, active, coef)) {
      return invalidArgument("the measured steps cannot tell the timing model's terms apart");
    }
    int worst = -1;
    for (int j = 0; j < kTerms; ++j) {
      if (active[j] && coef[j] < 0 && (worst < 0 || coef[j] < coef[worst])) worst = j;
    }
    if (worst < 0) break;
    active[worst] = false;
  }
  ProfileFit fit;
  fit.profile = base;
  fit.profile.step_base_us = coef[0];
  fit.profile.prefill_us_per_token = coef[1];
  fit.profile.attention_us_per_pair = coef[2];
  fit.profile.decode_us_per_seq = coef[3];
  fit.profile.kv_read_us_per_token = coef[4];
  fit.profile.speedup = 1.0;
  double sum = 0;
  for (const auto& s : samples) {
    const double e = std::abs(predictStepUs(fit.profile, s) - s.us) / s.us;
    fit.max_relative_error = std::max(fit.max_relative_error, e);
    sum += e;
  }
  fit.mean_relative_error = sum / static_cast<double>(samples.size());
  return fit;
}

}  // namespace turbine::mocker
