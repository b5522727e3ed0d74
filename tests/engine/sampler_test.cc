#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

namespace turbine::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<float> someLogits(int vocab, uint64_t seed) {
  SamplerRng rng(seed);
  std::vector<float> l(vocab);
  for (auto& x : l) x = static_cast<float>(rng.uniform() * 6.0 - 3.0);
  return l;
}

TEST(Sampler, RngIsFixedAndUniformish) {
  SamplerRng a(7), b(7), c(8);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = a.uniform();
    ASSERT_EQ(u, b.uniform());
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
  EXPECT_NE(SamplerRng(7).next(), c.next());
}

TEST(Sampler, ArgmaxTakesTheFirstMaximum) {
  std::vector<float> x(37, -1.0f);
  x[13] = 2.0f;
  x[29] = 2.0f;  // a tie in another SIMD lane group: the lower index wins
  x[36] = 1.5f;
  EXPECT_EQ(argmax(x), 13);
  x[36] = 9.0f;  // in the scalar tail
  EXPECT_EQ(argmax(x), 36);
  EXPECT_EQ(argmax(std::vector<float>{kNegInf, kNegInf}), 0);
  EXPECT_EQ(argmax(std::vector<float>{0.5f, 3.0f, 3.0f}), 1);
}

TEST(Sampler, TemperatureZeroAndTopK1AreGreedy) {
  Sampler s;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const auto logits = someLogits(100, seed);
    const int32_t best = argmax(logits);
    SamplingParams p;
    p.temperature = 0;
    SamplerRng rng(seed);
    EXPECT_EQ(s.sample(logits, p, {}, rng).token, best);
    SamplingParams k1;
    k1.temperature = 1.5f;
    k1.top_k = 1;
    EXPECT_EQ(s.sample(logits, k1, {}, rng).token, best);
  }
}

TEST(Sampler, SeededSamplingIsReproducibleAndVaries) {
  Sampler s1, s2;
  const auto logits = someLogits(50, 3);
  SamplingParams p;
  p.temperature = 1.0f;
  SamplerRng a(123), b(123);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(s1.sample(logits, p, {}, a).token);
    // Interleave unrelated work on the second sampler: scratch state must not matter.
    SamplerRng other(i);
    (void)s2.sample(someLogits(50, 100 + i), p, {}, other);
    tb.push_back(s2.sample(logits, p, {}, b).token);
  }
  EXPECT_EQ(ta, tb);
  std::set<int32_t> distinct(ta.begin(), ta.end());
  EXPECT_GT(distinct.size(), 5u);  // not greedy
}

TEST(Sampler, SamplingFollowsSoftmax) {
  Sampler s;
  const std::vector<float> logits = {0.0f, std::log(3.0f), kNegInf, 0.0f};  // p = 1/5, 3/5, 0, 1/5
  SamplingParams p;
  SamplerRng rng(5);
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits, p, {}, rng).token];
  EXPECT_NEAR(counts[0] / double(n), 0.2, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.6, 0.02);
  EXPECT_EQ(counts[2], 0);
}

TEST(Sampler, TopKTopPMinPRestrictTheSupport) {
  Sampler s;
  // p ∝ 8, 4, 2, 1, 1 (/16)
  const std::vector<float> logits = {std::log(8.f), std::log(4.f), std::log(2.f), 0.f, 0.f};
  SamplerRng rng(9);
  auto support = [&](SamplingParams p) {
    std::set<int32_t> seen;
    for (int i = 0; i < 3000; ++i) seen.insert(s.sample(logits, p, {}, rng).token);
    return seen;
  };
  SamplingParams k2;
  k2.top_k = 2;
  EXPECT_EQ(support(k2), (std::set<int32_t>{0, 1}));
  SamplingParams p07;
  p07.top_p = 0.7f;  // 8/16 = 0.5 < 0.7 <= 12/16
  EXPECT_EQ(support(p07), (std::set<int32_t>{0, 1}));
  SamplingParams p05;
  p05.top_p = 0.5f;  // exactly the first token's mass
  EXPECT_EQ(support(p05), (std::set<int32_t>{0}));
  SamplingParams mp;
  mp.min_p = 0.25f;  // keep p >= 0.25 * 8/16 = 2/16
  EXPECT_EQ(support(mp), (std::set<int32_t>{0, 1, 2}));
}

TEST(Sampler, RepetitionPenaltyDividesPositiveMultipliesNegative) {
  Sampler s;
  std::vector<float> l = {2.0f, -2.0f, 2.0f, -2.0f, 1.0f};
  const std::vector<int32_t> prompt = {0, 1}, output = {1};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  SampleContext ctx{prompt, output, {}, 0, {}};
  s.applyPenalties(l, p, ctx);
  EXPECT_FLOAT_EQ(l[0], 1.0f);   // in prompt, positive: / 2
  EXPECT_FLOAT_EQ(l[1], -4.0f);  // in prompt and output, applied once: * 2
  EXPECT_FLOAT_EQ(l[2], 2.0f);   // unseen
  EXPECT_FLOAT_EQ(l[3], -2.0f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesUseOutputCounts) {
  Sampler s;
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  const std::vector<int32_t> prompt = {3, 3, 3}, output = {0, 0, 0, 1};
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  s.applyPenalties(l, p, SampleContext{prompt, output, {}, 0, {}});
  EXPECT_FLOAT_EQ(l[0], 1.0f - 0.5f - 0.75f);
  EXPECT_FLOAT_EQ(l[1], 1.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[2], 1.0f);
  EXPECT_FLOAT_EQ(l[3], 1.0f);  // prompt tokens are not penalized by these two
}

TEST(Sampler, PenaltiesChangeTheGreedyChoice) {
  Sampler s;
  const std::vector<float> logits = {3.0f, 2.5f, 0.0f};
  const std::vector<int32_t> output = {0};
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplerRng rng(1);
  EXPECT_EQ(s.sample(logits, greedy, SampleContext{{}, output, {}, 0, {}}, rng).token, 0);
  SamplingParams pres = greedy;
  pres.presence_penalty = 1.0f;
  EXPECT_EQ(s.sample(logits, pres, SampleContext{{}, output, {}, 0, {}}, rng).token, 1);
  SamplingParams rep = greedy;
  rep.repetition_penalty = 1.5f;  // 3 / 1.5 = 2 < 2.5
  EXPECT_EQ(s.sample(logits, rep, SampleContext{{}, output, {}, 0, {}}, rng).token, 1);
  SamplingParams bias = greedy;
  bias.logit_bias[2] = 5.0f;
  EXPECT_EQ(s.sample(logits, bias, SampleContext{{}, output, {}, 0, {}}, rng).token, 2);
}

TEST(Sampler, MinTokensSuppressesStopTokens) {
  Sampler s;
  const std::vector<float> logits = {0.0f, 5.0f, 1.0f};  // 1 is EOS here
  const std::vector<int32_t> eos = {1};
  SamplingParams p;
  p.temperature = 0;
  SamplerRng rng(1);
  const std::vector<int32_t> one = {2};
  EXPECT_EQ(s.sample(logits, p, SampleContext{{}, one, eos, 2, {}}, rng).token, 2);  // 1 < 2
  const std::vector<int32_t> two = {2, 2};
  EXPECT_EQ(s.sample(logits, p, SampleContext{{}, two, eos, 2, {}}, rng).token, 1);
}

TEST(Sampler, LogprobsAreRawLogSoftmaxWithTopN) {
  Sampler s;
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, -1.0f};
  double z = 0;
  for (float l : logits) z += std::exp(l);
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 2.0f;  // processed logits differ; logprobs must not
  p.logprobs = true;
  p.top_logprobs = 2;
  const std::vector<int32_t> output = {1};
  SamplerRng rng(1);
  const auto r = s.sample(logits, p, SampleContext{{}, output, {}, 0, {}}, rng);
  EXPECT_EQ(r.token, 2);  // 3 - 2 = 1 < 2
  ASSERT_TRUE(r.logprobs.has_value());
  EXPECT_EQ(r.logprobs->chosen.token, 2);
  EXPECT_NEAR(r.logprobs->chosen.logprob, 2.0 - std::log(z), 1e-5);
  ASSERT_EQ(r.logprobs->top.size(), 2u);
  EXPECT_EQ(r.logprobs->top[0].token, 1);
  EXPECT_NEAR(r.logprobs->top[0].logprob, 3.0 - std::log(z), 1e-5);
  EXPECT_EQ(r.logprobs->top[1].token, 2);
}

}  // namespace
}  // namespace turbine::engine
