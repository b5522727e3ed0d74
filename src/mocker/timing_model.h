// TimingModel: how long one engine step takes, without running a model (issue 5 §4). A step is
// the scheduler's Batch: prefill chunks (many tokens at a context offset) and decodes (one token
// each). Its duration, in microseconds, is
//
//   step_us = step_base_us
//           + prefill_us_per_token  * (tokens in prefill chunks)
//           + attention_us_per_pair * sum over prefill chunks of n * (start + n / 2)   [quadratic]
//           + decode_us_per_seq     * (decodes)
//           + kv_read_us_per_token  * sum over decodes of their context length
//
// plus, for a step that copied KV blocks back from a host tier (MockEngineOptions::host_blocks),
// onboard_us_per_token * their tokens (the default: 128 KiB per token at ~25 GB/s host -> device).
//
// all divided by `speedup`. The defaults approximate an 8B-parameter model in bf16 on one H100
// (weights read once per step ~5 ms; ~25k prefill tokens/s at short context; KV 128 KiB/token).
// A JSON profile file may override any field (unknown keys are errors, so typos show).
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "engine/batch.h"

namespace turbine::mocker {

struct TimingProfile {
  double step_base_us = 5000.0;
  double prefill_us_per_token = 40.0;
  double attention_us_per_pair = 0.0009;
  double decode_us_per_seq = 30.0;
  double kv_read_us_per_token = 0.04;
  double onboard_us_per_token = 5.0;
  double speedup = 1.0;  // > 0: every step takes 1/speedup of the modelled time
  // Engine shape the profile describes (the scheduler's limits).
  int32_t max_num_batched_tokens = 8192;
  int32_t max_num_seqs = 256;
};

// Fields absent from the JSON keep their defaults. InvalidArgument naming the file and key.
Result<TimingProfile> loadTimingProfile(const std::string& path);
Result<TimingProfile> parseTimingProfile(const std::string& json_text, const std::string& source);
Status validateTimingProfile(const TimingProfile& p);

// Duration of one step (microseconds, >= 0); 0 for an empty batch.
double stepTimeUs(const TimingProfile& p, const engine::Batch& batch);

// The same for a single sequence, handy for calibration: prefill of `new_tokens` after
// `cached_tokens`, alone in a step.
double prefillTimeUs(const TimingProfile& p, int64_t cached_tokens, int64_t new_tokens);
double decodeStepTimeUs(const TimingProfile& p, int64_t batch_size, int64_t total_context);

// Time to first token of a prompt alone on an idle engine (no queue, no other sequence in its
// steps): its `new_tokens` after `cached_tokens` in chunks of at most max_num_batched_tokens,
// one step each, costed as stepTimeUs() costs them (a lone last token is a decode). The part of
// a measured TTFT above this is waiting: queueing and sharing steps with other sequences.
double isolatedPrefillUs(const TimingProfile& p, int64_t cached_tokens, int64_t new_tokens);

}  // namespace turbine::mocker
