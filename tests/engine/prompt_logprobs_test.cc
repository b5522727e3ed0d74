// Prompt logprobs (SamplingParams::prompt_logprobs) through the scheduler, against a reference
// computed here from FakeRunner's logits function: every prompt token after the first is scored
// by the logits of the prefix before it, whatever the chunking, the prefix cache, the row budget
// or a preemption. And with the tiny model: a prompt's scores of tokens the engine generated
// itself equal the logprobs it reported when it generated them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "engine/engine_test_util.h"
#include "engine/fake_runner.h"
#include "engine/llama_model.h"
#include "engine/scheduler.h"

namespace turbine::engine {
namespace {

using testing::FakeRunner;
using testing::fakeLogits;

std::vector<int32_t> randomPrompt(int32_t len, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  return testing::randomPrompt(rng, len, vocab);
}

struct Collected {
  std::vector<int32_t> tokens;
  std::vector<PositionLogprobs> logprobs;  // of generated tokens
  std::optional<std::vector<PositionLogprobs>> prompt_logprobs;
  int prompt_logprobs_chunks = 0;  // chunks that carried them (must be 1)
  size_t first_token_chunk = 0;    // index of the chunk that carried them
  size_t chunks = 0;
  Usage usage;
  bool finished = false;
};

class Runner {
 public:
  Runner(int32_t vocab, int32_t block, int32_t blocks, int32_t budget, bool caching = true)
      : runner(vocab, block, blocks, 512), sched(options(budget, caching), &runner) {}

  static SchedulerOptions options(int32_t budget, bool caching) {
    SchedulerOptions o;
    o.model_id = "fake";
    o.max_num_batched_tokens = budget;
    o.enable_prefix_caching = caching;
    return o;
  }

  void add(Request r) {
    const RequestId id = r.request_id;
    ASSERT_TRUE(validateRequest(r, sched.limits()).isOk());
    ASSERT_TRUE(sched.add(std::move(r), [this, id](Output&& o) {
                       Collected& c = out[id + "/" + std::to_string(o.index)];
                       c.tokens.insert(c.tokens.end(), o.token_ids.begin(), o.token_ids.end());
                       c.logprobs.insert(c.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
                       if (o.prompt_logprobs) {
                         ++c.prompt_logprobs_chunks;
                         c.first_token_chunk = c.chunks;
                         c.prompt_logprobs = std::move(o.prompt_logprobs);
                       }
                       ++c.chunks;
                       if (o.finished()) {
                         c.finished = true;
                         c.usage = *o.usage;
                       }
                     }).isOk());
  }

  void run() {
    for (int i = 0; i < 100000 && sched.hasWork(); ++i) {
      ASSERT_TRUE(sched.step().isOk());
      max_step_tokens = std::max(max_step_tokens, sched.lastBatchTokens());
    }
    ASSERT_FALSE(sched.hasWork());
  }

  FakeRunner runner;
  Scheduler sched;
  std::map<std::string, Collected> out;
  int64_t max_step_tokens = 0;
};

Request request(const std::string& id, std::vector<int32_t> prompt, int32_t top, int32_t max_tokens = 3) {
  Request r = testing::greedyRequest(id, std::move(prompt), max_tokens);
  r.sampling.prompt_logprobs = top;
  return r;
}

// The scores of prompt[1..] under FakeRunner's model, in double precision.
std::vector<PositionLogprobs> reference(const std::vector<int32_t>& prompt, int32_t vocab, int32_t top) {
  std::vector<PositionLogprobs> out;
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (size_t t = 1; t < prompt.size(); ++t) {
    fakeLogits(std::span<const int32_t>(prompt).first(t), logits);
    double m = -1e300;
    for (float l : logits) m = std::max(m, static_cast<double>(l));
    double sum = 0;
    for (float l : logits) sum += std::exp(static_cast<double>(l) - m);
    const double lse = m + std::log(sum);
    PositionLogprobs p;
    const int32_t tok = prompt[t];
    p.chosen = {tok, static_cast<float>(logits[static_cast<size_t>(tok)] - lse)};
    p.rank = 1 + static_cast<int32_t>(std::count_if(logits.begin(), logits.end(),
                                                    [&](float l) { return l > logits[static_cast<size_t>(tok)]; }));
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int32_t v = 0; v < vocab; ++v) ids[static_cast<size_t>(v)] = v;
    std::partial_sort(ids.begin(), ids.begin() + top, ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int32_t k = 0; k < top; ++k) p.top.push_back({ids[k], static_cast<float>(logits[ids[k]] - lse)});
    out.push_back(std::move(p));
  }
  return out;
}

void expectScores(const std::vector<PositionLogprobs>& got, const std::vector<PositionLogprobs>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("prompt token " + std::to_string(i + 1));
    EXPECT_EQ(got[i].chosen.token, want[i].chosen.token);
    EXPECT_NEAR(got[i].chosen.logprob, want[i].chosen.logprob, 1e-4);
    EXPECT_EQ(got[i].rank, want[i].rank);
    ASSERT_EQ(got[i].top.size(), want[i].top.size());
    for (size_t k = 0; k < want[i].top.size(); ++k) {
      EXPECT_EQ(got[i].top[k].token, want[i].top[k].token);
      EXPECT_NEAR(got[i].top[k].logprob, want[i].top[k].logprob, 1e-4);
    }
  }
}

TEST(PromptLogprobsTest, EveryPromptTokenIsScoredByItsPrefixInOneChunk) {
  constexpr int32_t kVocab = 97;
  Runner h(kVocab, 4, 64, 2048);
  const auto prompt = randomPrompt(23, kVocab, 1);
  h.add(request("a", prompt, 3));
  h.run();
  const Collected& c = h.out["a/0"];
  ASSERT_TRUE(c.prompt_logprobs.has_value());
  EXPECT_EQ(c.prompt_logprobs_chunks, 1);
  EXPECT_EQ(c.first_token_chunk, 0u);  // with the first token
  expectScores(*c.prompt_logprobs, reference(prompt, kVocab, 3));
  // The generation is the plain greedy one: the extra rows change nothing else.
  EXPECT_EQ(c.tokens, testing::fakeGreedy(prompt, kVocab, 3));
}

TEST(PromptLogprobsTest, ChunkedPrefillGivesTheSameScores) {
  constexpr int32_t kVocab = 61;
  const auto prompt = randomPrompt(40, kVocab, 2);
  for (int32_t budget : {7, 16, 39, 40}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    Runner h(kVocab, 4, 64, budget);
    h.add(request("a", prompt, 2));
    h.run();
    ASSERT_TRUE(h.out["a/0"].prompt_logprobs.has_value());
    expectScores(*h.out["a/0"].prompt_logprobs, reference(prompt, kVocab, 2));
  }
}

TEST(PromptLogprobsTest, APromptInThePrefixCacheIsComputedAgain) {
  constexpr int32_t kVocab = 53;
  Runner h(kVocab, 4, 64, 2048);
  const auto prompt = randomPrompt(30, kVocab, 3);
  Request warm = request("warm", prompt, 0);
  warm.sampling.prompt_logprobs.reset();
  h.add(warm);
  h.run();
  h.add(request("b", prompt, 1));
  Request plain = request("c", prompt, 0);
  plain.sampling.prompt_logprobs.reset();
  h.add(plain);
  h.run();
  EXPECT_EQ(h.out["b/0"].usage.cached_tokens, 0);   // scored from the first token
  EXPECT_EQ(h.out["c/0"].usage.cached_tokens, 28);  // the same prompt without scores: cached
  EXPECT_FALSE(h.out["c/0"].prompt_logprobs.has_value());
  EXPECT_FALSE(h.out["warm/0"].prompt_logprobs.has_value());
  expectScores(*h.out["b/0"].prompt_logprobs, reference(prompt, kVocab, 1));
}

TEST(PromptLogprobsTest, LogitsRowsPerStepAreBudgeted) {
  // A vocabulary this large leaves the floor of 16 rows a step for prompt scores.
  constexpr int32_t kVocab = 1 << 20;
  Runner h(kVocab, 4, 64, 2048);
  const auto prompt = randomPrompt(40, kVocab, 4);
  h.add(request("a", prompt, 1, 1));
  h.run();
  EXPECT_EQ(h.max_step_tokens, 16);
  ASSERT_TRUE(h.out["a/0"].prompt_logprobs.has_value());
  expectScores(*h.out["a/0"].prompt_logprobs, reference(prompt, kVocab, 1));
}

TEST(PromptLogprobsTest, OnlySampleZeroCarriesThemAndAOneTokenPromptHasNone) {
  constexpr int32_t kVocab = 41;
  Runner h(kVocab, 4, 64, 2048);
  Request r = request("n", randomPrompt(9, kVocab, 5), 0);
  r.n = 3;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 7;
  h.add(r);
  h.add(request("one", {5}, 2));
  h.run();
  EXPECT_TRUE(h.out["n/0"].prompt_logprobs.has_value());
  EXPECT_FALSE(h.out["n/1"].prompt_logprobs.has_value());
  EXPECT_FALSE(h.out["n/2"].prompt_logprobs.has_value());
  ASSERT_TRUE(h.out["one/0"].prompt_logprobs.has_value());
  EXPECT_TRUE(h.out["one/0"].prompt_logprobs->empty());
}

TEST(PromptLogprobsTest, PreemptedMidPromptTheScoresAreNotRepeated) {
  // 10 blocks of 4: two 24-token prompts in 7-token chunks cannot both hold their blocks, so the
  // newer is preempted and recomputed; its scores still come once, in order.
  constexpr int32_t kVocab = 37;
  Runner h(kVocab, 4, 10, 7);
  const auto p1 = randomPrompt(24, kVocab, 6), p2 = randomPrompt(24, kVocab, 7);
  h.add(request("x", p1, 1, 8));
  h.add(request("y", p2, 1, 8));
  h.run();
  EXPECT_GT(h.sched.counters().preemptions, 0);
  expectScores(*h.out["x/0"].prompt_logprobs, reference(p1, kVocab, 1));
  expectScores(*h.out["y/0"].prompt_logprobs, reference(p2, kVocab, 1));
  EXPECT_EQ(h.out["y/0"].prompt_logprobs_chunks, 1);
}

TEST(PromptLogprobsTest, OutOfRangeIsRefused) {
  Request r = request("bad", {1, 2, 3}, kMaxTopLogprobs + 1);
  RequestLimits lim{50, 512, 4, 64, 256};
  EXPECT_EQ(validateRequest(r, lim).code(), StatusCode::kInvalidArgument);
  r.sampling.prompt_logprobs = -1;
  EXPECT_EQ(validateRequest(r, lim).code(), StatusCode::kInvalidArgument);
  r.sampling.prompt_logprobs = kMaxTopLogprobs;
  EXPECT_TRUE(validateRequest(r, lim).isOk());
}

TEST(PromptLogprobsTest, TinyModelScoresItsOwnGenerationAsItReportedIt) {
  auto w = testing::tinyWeights(11, "prompt_logprobs");
  ASSERT_TRUE(w);
  LlamaModelOptions mo;
  mo.kv_cache_bytes = 4 << 20;
  mo.block_size = 8;
  mo.threads = 1;
  EngineOptions eo;
  eo.max_num_batched_tokens = 16;  // the second request's prompt in chunks
  auto e = testing::tinyEngine(w, mo, eo);
  ASSERT_TRUE(e);
  const std::vector<int32_t> prompt = {1, 17, 230, 45, 99, 12, 301, 7, 64};
  Request gen;
  gen.request_id = "gen";
  gen.token_ids = prompt;
  gen.sampling.temperature = 0.0f;
  gen.sampling.logprobs = true;
  gen.stop.max_tokens = 24;
  gen.stop.ignore_eos = true;
  std::vector<PositionLogprobs> reported;
  std::vector<int32_t> generated;
  {
    auto s = e->addStream(gen);
    ASSERT_TRUE(s.isOk());
    while (auto o = (*s)->next()) {
      generated.insert(generated.end(), o->token_ids.begin(), o->token_ids.end());
      reported.insert(reported.end(), o->logprobs.begin(), o->logprobs.end());
    }
  }
  ASSERT_EQ(generated.size(), 24u);
  Request score = request("score", prompt, 0, 1);
  score.token_ids.insert(score.token_ids.end(), generated.begin(), generated.end());
  std::optional<std::vector<PositionLogprobs>> scores;
  {
    auto s = e->addStream(score);
    ASSERT_TRUE(s.isOk());
    while (auto o = (*s)->next()) {
      if (o->prompt_logprobs) scores = std::move(o->prompt_logprobs);
      if (o->finished()) {
        EXPECT_EQ(o->usage->cached_tokens, 0);
      }
    }
  }
  ASSERT_TRUE(scores.has_value());
  ASSERT_EQ(scores->size(), score.token_ids.size() - 1);
  for (size_t i = 0; i < generated.size(); ++i) {
    const PositionLogprobs& s = (*scores)[prompt.size() - 1 + i];
    EXPECT_EQ(s.chosen.token, generated[i]);
    EXPECT_EQ(s.rank, 1) << "greedy tokens are the most likely";
    EXPECT_NEAR(s.chosen.logprob, reported[i].chosen.logprob, 2e-3) << "token " << i;
  }
}

}  // namespace
}  // namespace turbine::engine
