// Sampler: turns one row of logits into a token, as vLLM defines each knob (see SamplingParams).
// Reproducibility: all randomness comes from the request's own SamplerRng, so a seeded request
// draws the same tokens whatever else is in the batch. Logprobs are log-softmax of the RAW
// logits (vLLM's default `raw_logprobs`), not of the processed ones.
// Thread safety: a Sampler holds scratch buffers; use one per thread (the step loop).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/random.h"
#include "engine/request.h"

namespace turbine::engine {

// The request's own PRNG (common/random.h: xoshiro256**, portable), with the conversions the
// sampler needs.
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed = 0) : gen_(seed) {}
  uint64_t next() { return gen_.next(); }
  // Uniform in [0, 1), 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  Xoshiro256 gen_;
};

struct SampleResult {
  int32_t token = 0;
  std::optional<PositionLogprobs> logprobs;  // set when params.logprobs
};

// What the sampler must know about the sequence besides the logits.
struct SampleContext {
  std::span<const int32_t> prompt;       // prompt token ids (repetition penalty)
  std::span<const int32_t> output;       // tokens generated so far (all penalties, min_tokens)
  std::span<const int32_t> suppress;     // ids banned while output.size() < min_tokens (EOS, stop)
  int32_t min_tokens = 0;
  // Guided decoding: bit id set = token id may be drawn (vocab bits); empty = no constraint.
  std::span<const uint64_t> allowed;
};

class Sampler {
 public:
  // `logits` has vocab entries. Never fails: params were validated at admission.
  SampleResult sample(std::span<const float> logits, const SamplingParams& params,
                      const SampleContext& ctx, SamplerRng& rng);

  // The processed logits of the last sample() call (after bias, penalties, temperature and
  // filtering; filtered tokens are -inf). Empty after a greedy call with nothing to process.
  std::span<const float> lastProcessed() const { return work_; }

  // Applies the guided mask (ctx.allowed), min_tokens suppression, logit_bias and the three
  // penalties to `logits` in place.
  void applyPenalties(std::span<float> logits, const SamplingParams& params,
                      const SampleContext& ctx);

  // Log-softmax of `raw` at `chosen`, its rank, and the top_n most likely tokens' (best first).
  PositionLogprobs logprobsOf(std::span<const float> raw, int32_t chosen, int32_t top_n);

 private:
  int32_t sampleFiltered(const SamplingParams& params, SamplerRng& rng);

  std::vector<float> work_;
  std::vector<int32_t> counts_;    // per vocab id, zero between calls
  std::vector<int32_t> touched_;
  std::vector<uint8_t> seen_;      // per vocab id, zero between calls
  std::vector<int32_t> order_;
  std::vector<std::pair<float, int32_t>> cand_;
};

// Greedy: the lowest index holding the maximum.
int32_t argmax(std::span<const float> logits);

// True when params select greedy decoding (temperature below 1e-5, or top_k == 1).
bool isGreedy(const SamplingParams& params);

}  // namespace turbine::engine
