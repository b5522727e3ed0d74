#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace turbine::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kGreedyTemperature = 1e-5f;

// Higher probability first; ties broken by lower token id, so the order is total.
bool byProbDesc(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace


int32_t argmax(std::span<const float> logits) {
  // Two passes: a lane-wise max the compiler vectorizes, then the first index holding it.
  constexpr size_t kLanes = 8;
  const size_t n = logits.size();
  const float* x = logits.data();
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, kNegInf);
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  }
  float m = kNegInf;
  for (float v : lanes) m = v > m ? v : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (size_t k = 0; k < n; ++k) {
    if (x[k] == m) return static_cast<int32_t>(k);
  }
  return 0;  // all NaN or -inf
}

bool isGreedy(const SamplingParams& p) {
  return p.temperature < kGreedyTemperature || p.top_k == 1;
}

SampleResult Sampler::sample(std::span<const float> logits, const SamplingParams& params,
                             const SampleContext& ctx, SamplerRng& rng) {
  SampleResult r;
  const bool untouched = params.logit_bias.empty() && params.repetition_penalty == 1.0f &&
                         params.presence_penalty == 0.0f && params.frequency_penalty == 0.0f &&
                         ctx.allowed.empty() &&
                         (ctx.suppress.empty() ||
                          static_cast<int32_t>(ctx.output.size()) >= ctx.min_tokens);
  if (untouched && isGreedy(params)) {
    r.token = argmax(logits);  // nothing to process: no copy
    work_.clear();
  } else {
    work_.assign(logits.begin(), logits.end());
    applyPenalties(work_, params, ctx);
    r.token = isGreedy(params) ? argmax(work_) : sampleFiltered(params, rng);
  }
  if (params.logprobs) r.logprobs = logprobsOf(logits, r.token, params.top_logprobs);
  return r;
}

void Sampler::applyPenalties(std::span<float> logits, const SamplingParams& p,
                             const SampleContext& ctx) {
  const size_t vocab = logits.size();
  if (!ctx.allowed.empty()) {
    for (size_t w = 0; w < ctx.allowed.size(); ++w) {
      const uint64_t bits = ctx.allowed[w];
      if (bits == ~uint64_t{0}) continue;
      const size_t end = std::min(vocab, (w + 1) * 64);
      for (size_t id = w * 64; id < end; ++id) {
        if (!((bits >> (id & 63)) & 1)) logits[id] = kNegInf;
      }
    }
  }
  if (static_cast<int32_t>(ctx.output.size()) < ctx.min_tokens) {
    for (int32_t id : ctx.suppress) logits[id] = kNegInf;
  }
  for (const auto& [id, bias] : p.logit_bias) logits[id] += bias;
  if (p.repetition_penalty != 1.0f) {
    seen_.resize(vocab, 0);
    touched_.clear();
    for (auto span : {ctx.prompt, ctx.output}) {
      for (int32_t id : span) {
        if (!seen_[id]) seen_[id] = 1, touched_.push_back(id);
      }
    }
    for (int32_t id : touched_) {
      float& l = logits[id];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
      seen_[id] = 0;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    counts_.resize(vocab, 0);
    touched_.clear();
    for (int32_t id : ctx.output) {
      if (counts_[id]++ == 0) touched_.push_back(id);
    }
    for (int32_t id : touched_) {
      logits[id] -= p.frequency_penalty * static_cast<float>(counts_[id]) + p.presence_penalty;
      counts_[id] = 0;
    }
  }
}

int32_t Sampler::sampleFiltered(const SamplingParams& p, SamplerRng& rng) {
  const size_t vocab = work_.size();
  const float inv_t = 1.0f / p.temperature;
  float m = kNegInf;
  for (float& l : work_) {
    l *= inv_t;
    m = std::max(m, l);
  }
  if (m == kNegInf) return 0;  // everything banned: nothing sensible to draw
  // Unnormalized probabilities relative to the max (max = 1), with min_p applied.
  cand_.clear();
  for (size_t i = 0; i < vocab; ++i) {
    const float q = std::exp(work_[i] - m);
    if (q > 0.0f && q >= p.min_p) cand_.emplace_back(q, static_cast<int32_t>(i));
  }
  const bool top_k = p.top_k > 0 && static_cast<size_t>(p.top_k) < cand_.size();
  if (top_k) {
    std::partial_sort(cand_.begin(), cand_.begin() + p.top_k, cand_.end(), byProbDesc);
    cand_.resize(static_cast<size_t>(p.top_k));
  } else if (p.top_p < 1.0f) {
    std::sort(cand_.begin(), cand_.end(), byProbDesc);
  }
  if (p.top_p < 1.0f) {
    double total = 0;
    for (const auto& c : cand_) total += c.first;
    double cum = 0;
    size_t keep = 0;
    while (keep < cand_.size()) {
      cum += cand_[keep++].first;
      if (cum >= p.top_p * total) break;
    }
    cand_.resize(keep);
  }
  // Record what survived, then draw by inverse CDF in candidate order.
  std::vector<float>& w = work_;
  std::vector<float> kept_logits;
  kept_logits.reserve(cand_.size());
  for (const auto& c : cand_) kept_logits.push_back(w[c.second]);
  std::fill(w.begin(), w.end(), kNegInf);
  double total = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    w[cand_[i].second] = kept_logits[i];
    total += cand_[i].first;
  }
  const double target = rng.uniform() * total;
  double cum = 0;
  for (const auto& c : cand_) {
    cum += c.first;
    if (target < cum) return c.second;
  }
  return cand_.back().second;
}

PositionLogprobs Sampler::logprobsOf(std::span<const float> raw, int32_t chosen, int32_t top_n) {
  float m = kNegInf;
  int32_t above = 0;
  for (float l : raw) {
    m = std::max(m, l);
    above += l > raw[chosen] ? 1 : 0;
  }
  double sum = 0;
  for (float l : raw) sum += std::exp(static_cast<double>(l) - m);
  const float lse = m + static_cast<float>(std::log(sum));
  PositionLogprobs out;
  out.chosen = {chosen, raw[chosen] - lse};
  out.rank = above + 1;
  if (top_n > 0) {
    cand_.clear();
    for (size_t i = 0; i < raw.size(); ++i) cand_.emplace_back(raw[i], static_cast<int32_t>(i));
    const size_t n = std::min(static_cast<size_t>(top_n), cand_.size());
    std::partial_sort(cand_.begin(), cand_.begin() + n, cand_.end(), byProbDesc);
    for (size_t i = 0; i < n; ++i) out.top.push_back({cand_[i].second, cand_[i].first - lse});
  }
  return out;
}

}  // namespace turbine::engine
