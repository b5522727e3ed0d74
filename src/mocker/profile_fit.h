// Fitting a TimingProfile to measured engine steps (`turbine profile`): the timing model is linear
// in its coefficients (timing_model.h),
//   step_us = step_base_us + prefill_us_per_token * P + attention_us_per_pair * A
//           + decode_us_per_seq * D + kv_read_us_per_token * K,
// so least squares over steps of known shape recovers them (of the relative error: short decode
// steps count as much as long prefills). Coefficients are kept >= 0 (a term
// that fits negative is dropped and the rest refitted: the model's terms are costs). The fit
// leaves onboard_us_per_token, speedup and the scheduler limits as they are in `base`.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "mocker/timing_model.h"

namespace turbine::mocker {

struct StepSample {
  double prefill_tokens = 0;   // P: tokens in prefill chunks
  double attention_pairs = 0;  // A: sum over chunks of n * (start + n / 2)
  double decodes = 0;          // D: decoding sequences
  double decode_context = 0;   // K: sum of their context lengths (cached tokens + 1)
  double us = 0;               // measured step time
};

struct ProfileFit {
  TimingProfile profile;
  double max_relative_error = 0;   // |fitted - measured| / measured, worst sample
  double mean_relative_error = 0;
};

// InvalidArgument when there are fewer samples than terms, a sample is not finite or not > 0 us,
// or the samples cannot tell the terms apart (singular).
Result<ProfileFit> fitTimingProfile(const std::vector<StepSample>& samples, const TimingProfile& base = {});

// The fitted profile's time for a sample (the model applied to its shape; speedup 1).
double predictStepUs(const TimingProfile& p, const StepSample& s);

}  // namespace turbine::mocker
