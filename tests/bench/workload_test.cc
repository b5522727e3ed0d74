#include "bench/workload.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/prompt.h"

namespace turbine::bench {
namespace {

std::vector<int32_t> slice(const std::vector<int32_t>& v, size_t block) {
  return {v.begin() + static_cast<long>(block * 512),
          v.begin() + static_cast<long>(std::min(v.size(), (block + 1) * 512))};
}

TEST(Workload, MooncakeEqualHashIdsGiveEqualTokenBlocks) {
  PromptRenderer r(PromptOptions{});
  std::vector<TraceRecord> recs = {{0, 1500, 4, {7, 8, 9}}, {10, 1100, 4, {7, 8, 42}},
                                   {20, 700, 4, {3, 8}}};
  auto w = makeTraceWorkload(recs, {});
  std::vector<std::vector<int32_t>> toks;
  while (auto s = w->next()) {
    toks.push_back(r.tokens(s->segments));
    EXPECT_EQ(static_cast<int32_t>(toks.back().size()), s->input_tokens);
  }
  ASSERT_EQ(toks.size(), 3u);
  EXPECT_EQ(toks[0].size(), 1500u);
  EXPECT_EQ(slice(toks[0], 0), slice(toks[1], 0));  // id 7
  EXPECT_EQ(slice(toks[0], 1), slice(toks[1], 1));  // id 8
  // id 9 vs 42: different blocks (compare the common length).
  auto b0 = slice(toks[0], 2), b1 = slice(toks[1], 2);
  b0.resize(b1.size());
  EXPECT_NE(b0, b1);
  EXPECT_NE(slice(toks[2], 0), slice(toks[0], 0));  // id 3 vs 7
  // Same id 8 at the same position, but after a different first block: the tokens are equal
  // (ids name blocks; the server's chained hash is what separates the prefixes).
  auto b8 = slice(toks[0], 1), b8_short = slice(toks[2], 1);
  ASSERT_EQ(b8_short.size(), 188u);
  EXPECT_TRUE(std::equal(b8_short.begin(), b8_short.end(), b8.begin()));
}

TEST(Workload, TraceArrivalsAreScaled) {
  std::vector<TraceRecord> recs = {{1000, 10, 1, {}}, {3000, 10, 1, {}}, {2000, 10, 1, {}}};
  TraceWorkloadOptions o;
  o.time_scale = 0.5;
  o.rate_scale = 2.0;
  auto w = makeTraceWorkload(recs, o);
  std::vector<double> at;
  while (auto s = w->next()) at.push_back(s->arrival_s);
  ASSERT_EQ(at.size(), 3u);
  EXPECT_DOUBLE_EQ(at[0], 0.0);
  EXPECT_DOUBLE_EQ(at[1], 0.25);  // 1 s * 0.5 / 2
  EXPECT_DOUBLE_EQ(at[2], 0.5);
  EXPECT_TRUE(w->done());
}

TEST(Workload, SyntheticSharedPrefixAndLengths) {
  SyntheticOptions o;
  o.requests = 20;
  o.input = {LengthDist::Kind::kUniform, 100, 200};
  o.output = {LengthDist::Kind::kFixed, 9, 0};
  o.shared_prefix = 0.5;
  o.rate = 10.0;
  PromptRenderer r(PromptOptions{});
  auto w = makeSyntheticWorkload(o);
  std::vector<std::vector<int32_t>> toks;
  double last = 0;
  while (auto s = w->next()) {
    EXPECT_GE(s->input_tokens, 100);
    EXPECT_LE(s->input_tokens, 200);
    EXPECT_EQ(s->output_tokens, 9);
    EXPECT_GT(s->arrival_s, last);
    last = s->arrival_s;
    toks.push_back(r.tokens(s->segments));
    EXPECT_EQ(static_cast<int32_t>(toks.back().size()), s->input_tokens);
  }
  ASSERT_EQ(toks.size(), 20u);
  // Poisson at 10 req/s: 20 arrivals take about 2 s.
  EXPECT_GT(last, 0.5);
  EXPECT_LT(last, 8.0);
  // The first 50 tokens (>= half of the shortest prompt) are shared; the tails differ.
  for (size_t i = 1; i < toks.size(); ++i) {
    EXPECT_TRUE(std::equal(toks[0].begin(), toks[0].begin() + 50, toks[i].begin()));
    EXPECT_NE(std::vector<int32_t>(toks[0].end() - 20, toks[0].end()),
              std::vector<int32_t>(toks[i].end() - 20, toks[i].end()));
  }
}

TEST(Workload, LengthDistParsing) {
  EXPECT_EQ(parseLengthDist("128")->a, 128);
  EXPECT_EQ(parseLengthDist("fixed:64")->a, 64);
  auto u = parseLengthDist("uniform:10:20");
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->kind, LengthDist::Kind::kUniform);
  auto n = parseLengthDist("normal:500:50");
  ASSERT_TRUE(n.isOk());
  std::mt19937_64 rng(1);
  double sum = 0;
  for (int i = 0; i < 2000; ++i) sum += n->sample(rng);
  EXPECT_NEAR(sum / 2000, 500, 5);
  for (const char* bad : {"", "0", "abc", "uniform:20:10", "normal:5", "gauss:1:2", "uniform:1:x"}) {
    EXPECT_FALSE(parseLengthDist(bad).isOk()) << bad;
  }
}

TEST(Workload, MultiTurnConversationsGrow) {
  MultiTurnOptions o;
  o.users = 2;
  o.turns = 3;
  o.input = {LengthDist::Kind::kFixed, 5, 0};
  o.output = {LengthDist::Kind::kFixed, 4, 0};
  o.system_prompt_tokens = 6;
  PromptRenderer r(PromptOptions{});
  auto w = makeMultiTurnWorkload(o, &r);
  EXPECT_EQ(w->total(), 6);
  EXPECT_TRUE(w->needsOutputText());
  int64_t n = 0;
  while (!w->done()) {
    auto s = w->next();
    ASSERT_TRUE(s.has_value());
    // system + 2 messages per earlier turn.
    EXPECT_EQ(s->history.size(), 1u + 2u * static_cast<size_t>(s->turn));
    EXPECT_EQ(s->history[0].role, "system");
    if (s->turn > 0) {
      EXPECT_EQ(s->history.back().content, "reply " + std::to_string(s->turn - 1));
    }
    RequestResult res;
    res.output_text = "reply " + std::to_string(s->turn);
    w->onComplete(*s, res);
    ++n;
  }
  EXPECT_EQ(n, 6);
  EXPECT_FALSE(w->next().has_value());
}

TEST(Prompt, BodyAsksForExactOutput) {
  PromptOptions po;
  po.model = "m";
  PromptRenderer r(po);
  RequestSpec s;
  s.segments = {{1, 10}};
  s.output_tokens = 33;
  auto j = nlohmann::json::parse(r.body(s));
  EXPECT_EQ(j["model"], "m");
  EXPECT_EQ(j["prompt"].size(), 10u);
  EXPECT_EQ(j["max_tokens"], 33);
  EXPECT_EQ(j["ignore_eos"], true);
  EXPECT_EQ(j["stream"], true);
  po.endpoint = Endpoint::kChat;
  PromptRenderer chat(po);
  s.history = {{"system", "be brief"}};
  auto c = nlohmann::json::parse(chat.body(s));
  ASSERT_EQ(c["messages"].size(), 2u);
  EXPECT_EQ(c["messages"][1]["role"], "user");
}

}  // namespace
}  // namespace turbine::bench
