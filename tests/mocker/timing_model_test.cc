// TimingModel formulas, profile parsing, and MockEngine driving the real scheduler.
#include "mocker/timing_model.h"

#include <gtest/gtest.h>

#include "mocker/mock_engine.h"

namespace turbine::mocker {
namespace {

TEST(TimingModelTest, PrefillIsLinearPlusQuadraticAttention) {
  TimingProfile p;
  p.step_base_us = 100;
  p.prefill_us_per_token = 2;
  p.attention_us_per_pair = 0.01;
  // 1000 new tokens after 0 cached: 100 + 2000 + 0.01 * 1000 * 500.
  EXPECT_DOUBLE_EQ(prefillTimeUs(p, 0, 1000), 100 + 2000 + 5000);
  // Same tokens after 4000 cached: the attention term grows with the context.
  EXPECT_DOUBLE_EQ(prefillTimeUs(p, 4000, 1000), 100 + 2000 + 0.01 * 1000 * 4500);
  // Doubling the tokens more than doubles the attention part.
  EXPECT_GT(prefillTimeUs(p, 0, 2000) - 2 * prefillTimeUs(p, 0, 1000), -100.0 - 1e-9);
  p.speedup = 10;
  EXPECT_DOUBLE_EQ(prefillTimeUs(p, 0, 1000), (100 + 2000 + 5000) / 10.0);
}

TEST(TimingModelTest, DecodeStepGrowsWithBatchAndContext) {
  TimingProfile p;
  const double one = decodeStepTimeUs(p, 1, 1000);
  EXPECT_GT(decodeStepTimeUs(p, 8, 8000), one);
  EXPECT_GT(decodeStepTimeUs(p, 1, 100000), one);
  EXPECT_DOUBLE_EQ(decodeStepTimeUs(p, 0, 0), 0.0);
  // A batch of 4 decodes at context 100..103 matches the closed form.
  std::vector<int32_t> tok(1, 0);
  engine::Batch b;
  for (int i = 0; i < 4; ++i) b.seqs.push_back({tok, 100 + i, {}, true});
  EXPECT_NEAR(stepTimeUs(p, b), decodeStepTimeUs(p, 4, 101 + 102 + 103 + 104), 1e-6);
}

TEST(TimingModelTest, IsolatedPrefillIsChunkedLikeTheScheduler) {
  TimingProfile p;
  p.step_base_us = 100;
  p.prefill_us_per_token = 2;
  p.attention_us_per_pair = 0.01;
  p.max_num_batched_tokens = 100;
  // 250 tokens after 40 cached: chunks of 100, 100, 50 at offsets 40, 140, 240.
  const double want = 3 * 100 + 2 * 250 + 0.01 * (100 * (40 + 50) + 100 * (140 + 50) + 50 * (240 + 25));
  EXPECT_DOUBLE_EQ(isolatedPrefillUs(p, 40, 250), want);
  // One chunk: the single-step formula.
  EXPECT_DOUBLE_EQ(isolatedPrefillUs(p, 7, 60), prefillTimeUs(p, 7, 60));
  // A fully cached prompt computes its last token as a decode.
  EXPECT_DOUBLE_EQ(isolatedPrefillUs(p, 999, 1), decodeStepTimeUs(p, 1, 1000));
  EXPECT_DOUBLE_EQ(isolatedPrefillUs(p, 0, 0), 0.0);
  p.speedup = 4;
  EXPECT_DOUBLE_EQ(isolatedPrefillUs(p, 40, 250), want / 4);
}

TEST(TimingModelTest, ProfileParsing) {
  auto p = parseTimingProfile(R"({"step_base_us": 7, "max_num_seqs": 3})", "x.json");
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  EXPECT_EQ(p->step_base_us, 7);
  EXPECT_EQ(p->max_num_seqs, 3);
  EXPECT_EQ(p->prefill_us_per_token, TimingProfile{}.prefill_us_per_token);
  auto bad = parseTimingProfile(R"({"step_bse_us": 7})", "x.json");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("step_bse_us"), std::string::npos);
  EXPECT_FALSE(parseTimingProfile(R"({"speedup": 0})", "x.json").isOk());
  EXPECT_FALSE(parseTimingProfile("{", "x.json").isOk());
  EXPECT_FALSE(loadTimingProfile("/nonexistent/profile.json").isOk());
}

TEST(MockEngineTest, RunsRequestsInModelledTimeWithPrefixCaching) {
  MockEngineOptions o;
  o.block_size = 16;
  o.num_blocks = 64;
  o.profile.step_base_us = 1000;
  MockEngine engine(o);
  std::vector<engine::Output> outs;
  auto add = [&](const std::string& id) {
    engine::Request r;
    r.request_id = id;
    r.token_ids.assign(16 * 4 + 1, 3);
    r.sampling.temperature = 0;
    r.stop.max_tokens = 5;
    r.stop.ignore_eos = true;
    return engine.add(std::move(r), [&](engine::Output&& out) { outs.push_back(std::move(out)); });
  };
  ASSERT_TRUE(add("a").isOk());
  double total = 0;
  int steps = 0;
  while (engine.hasWork()) {
    auto d = engine.step();
    ASSERT_TRUE(d.isOk());
    EXPECT_GE(*d, 1000.0);
    total += *d;
    ++steps;
  }
  EXPECT_EQ(steps, 5);  // one prefill step producing token 1, four decodes
  EXPECT_NEAR(total, prefillTimeUs(o.profile, 0, 65) + 4 * 1000 + 4 * 30 + 0.04 * (66 + 67 + 68 + 69), 1e-6);
  int tokens = 0;
  for (const auto& out : outs) {
    for (int32_t t : out.token_ids) EXPECT_EQ(t, kMockToken);
    tokens += static_cast<int>(out.token_ids.size());
  }
  EXPECT_EQ(tokens, 5);
  ASSERT_TRUE(outs.back().usage.has_value());
  EXPECT_EQ(outs.back().usage->cached_tokens, 0);
  auto events = engine.takeEvents();
  EXPECT_FALSE(events.empty());  // stored events for the committed blocks
  outs.clear();
  ASSERT_TRUE(add("b").isOk());
  while (engine.hasWork()) ASSERT_TRUE(engine.step().isOk());
  EXPECT_EQ(outs.back().usage->cached_tokens, 64);  // the 4 full prompt blocks were reused
  const auto load = engine.load(7, 0);
  EXPECT_EQ(load.worker_id, 7u);
  EXPECT_EQ(load.kv_blocks_total, 64);
  EXPECT_EQ(load.kv_blocks_used, 0);
  EXPECT_GT(load.kv_blocks_cached_free, 0);
  // A lone request's time to its first token is isolatedPrefillUs of its uncached tokens: a
  // fresh 65-token prompt under a 24-token step budget takes 3 chunks (24, 24, 17).
  {
    MockEngineOptions co = o;
    co.profile.max_num_batched_tokens = 24;
    MockEngine chunked(co);
    bool first = false;
    engine::Request r;
    r.request_id = "c";
    r.token_ids.assign(16 * 4 + 1, 5);
    r.sampling.temperature = 0;
    r.stop.max_tokens = 2;
    r.stop.ignore_eos = true;
    auto on_output = [&](engine::Output&& out) { first |= !out.token_ids.empty(); };
    ASSERT_TRUE(chunked.add(std::move(r), on_output).isOk());
    double until_first = 0;
    int steps = 0;
    while (!first && chunked.hasWork()) {
      auto d = chunked.step();
      ASSERT_TRUE(d.isOk());
      until_first += *d;
      ++steps;
    }
    EXPECT_EQ(steps, 3);  // 24 + 24 + 17 tokens
    EXPECT_NEAR(until_first, isolatedPrefillUs(co.profile, 0, 65), 1e-6);
  }
  // A prompt larger than the pool is rejected with a clear error.
  engine::Request huge;
  huge.request_id = "huge";
  huge.token_ids.assign(16 * 64 + 1, 3);
  EXPECT_EQ(engine.add(std::move(huge), [](engine::Output&&) {}).code(), StatusCode::kInvalidArgument);
}

// A host tier below the mock pool: an evicted prompt comes back as cached tokens, its blocks cost
// onboard_us_per_token instead of a prefill, and the host tier's KV events are emitted.
TEST(MockEngineTest, HostTierBringsEvictedBlocksBackAtTheOnboardCost) {
  for (const int32_t host_blocks : {0, 32}) {
    MockEngineOptions o;
    o.block_size = 16;
    o.num_blocks = 8;  // one 65-token prompt and its decodes at a time
    o.host_blocks = host_blocks;
    o.profile.step_base_us = 1000;
    o.profile.onboard_us_per_token = 100;
    MockEngine engine(o);
    std::vector<engine::Output> outs;
    const auto run = [&](const std::string& id, int32_t token) {
      engine::Request r;
      r.request_id = id;
      r.token_ids.assign(16 * 4 + 1, token);
      r.sampling.temperature = 0;
      r.stop.max_tokens = 1;
      r.stop.ignore_eos = true;
      EXPECT_TRUE(engine.add(std::move(r), [&](engine::Output&& out) { outs.push_back(std::move(out)); }).isOk());
      double first_step = -1;
      while (engine.hasWork()) {
        auto d = engine.step();
        EXPECT_TRUE(d.isOk());
        if (first_step < 0) first_step = *d;
      }
      return first_step;
    };
    run("a", 3);
    run("b", 4);  // evicts a's blocks (8 blocks hold one prompt)
    run("c", 5);
    const double again = run("a2", 3);
    ASSERT_TRUE(outs.back().usage.has_value());
    kv::KvBlockSet set;
    for (const auto& e : engine.takeEvents()) set.apply(e);
    if (host_blocks == 0) {
      EXPECT_EQ(outs.back().usage->cached_tokens, 0);
      EXPECT_NEAR(again, prefillTimeUs(o.profile, 0, 65), 1e-6);
      EXPECT_EQ(set.size(kv::Tier::kHost), 0u);
    } else {
      EXPECT_EQ(outs.back().usage->cached_tokens, 64);
      EXPECT_NEAR(again, isolatedPrefillUs(o.profile, 64, 1) + 64 * 100.0, 1e-6);
      EXPECT_GE(set.size(kv::Tier::kHost), 4u);  // a's blocks (and b's, c's) went to the host tier
    }
  }
}

}  // namespace
}  // namespace turbine::mocker
