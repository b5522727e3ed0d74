// KV tiers below the engine's pool (EngineOptions::kv_tiers, kv/block_manager.h): blocks the pool
// evicts are offloaded, and a later prompt with that prefix gets them copied back instead of
// recomputed. With FakeRunner (whose logits depend on the tokens and positions it reads back
// from its KV slots, so a wrong copy changes the output) and with the real tiny model.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "engine/engine.h"
#include "engine/engine_test_util.h"
#include "engine/fake_runner.h"
#include "engine/llama_model.h"
#include "kv/block_hash.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

using testing::FakeRunner;
using testing::run;
using testing::RunResult;
using testing::fakeGreedy;
using testing::greedyRequest;
using testing::randomPrompt;

constexpr int32_t kVocab = 89;
constexpr int32_t kBlock = 4;

std::unique_ptr<Engine> fakeEngine(int32_t blocks, KvTierOptions tiers, FakeRunner** runner,
                                   std::vector<kv::KvEventMessage>* events = nullptr) {
  return testing::fakeEngine(kVocab, kBlock, blocks, std::move(tiers), runner, events);
}

size_t fakeBlockBytes() { return 2 * sizeof(int32_t) * kBlock; }

// Prompt A, then `flood` distinct prompts that push A's blocks out of a 12-block pool, then A
// again. Returns the second run of A; `computed` gets the tokens forward() computed for it.
RunResult evictAndRepeat(Engine& e, FakeRunner& runner, const std::vector<int32_t>& a, int flood,
                   int64_t* computed) {
  std::mt19937 rng(7);
  const RunResult first = run(e, greedyRequest("a1", a, 3));
  EXPECT_EQ(first.tokens, fakeGreedy(a, kVocab, 3));
  EXPECT_EQ(first.usage.cached_tokens, 0);
  for (int i = 0; i < flood; ++i) {
    const auto p = randomPrompt(rng, 21, kVocab);
    EXPECT_EQ(run(e, greedyRequest("f" + std::to_string(i), p, 2)).tokens, fakeGreedy(p, kVocab, 2));
  }
  e.sync();
  const int64_t before = runner.tokens_computed;
  RunResult again = run(e, greedyRequest("a2", a, 3));
  e.sync();
  *computed = runner.tokens_computed - before;
  EXPECT_EQ(again.tokens, first.tokens);
  EXPECT_TRUE(again.status.isOk()) << again.status.toString();
  return again;
}

TEST(KvTiers, WithoutTiersAnEvictedPrefixIsRecomputed) {
  FakeRunner* runner = nullptr;
  auto e = fakeEngine(12, {}, &runner);
  std::mt19937 rng(1);
  const auto a = randomPrompt(rng, 21, kVocab);  // 5 full blocks
  int64_t computed = 0;
  const RunResult again = evictAndRepeat(*e, *runner, a, 4, &computed);
  EXPECT_EQ(again.usage.cached_tokens, 0);
  EXPECT_EQ(computed, 21 + 2);  // the whole prompt, then two decodes
}

TEST(KvTiers, HostTierBringsAnEvictedPrefixBack) {
  FakeRunner* runner = nullptr;
  std::vector<kv::KvEventMessage> events;
  auto e = fakeEngine(12, {64 * fakeBlockBytes(), 0, ""}, &runner, &events);
  std::mt19937 rng(1);
  const auto a = randomPrompt(rng, 21, kVocab);
  int64_t computed = 0;
  const RunResult again = evictAndRepeat(*e, *runner, a, 4, &computed);
  // The first run cached 5 full blocks (its 21 prompt tokens and 2 generated ones were
  // computed): all come back, and only the prompt's last token and two decodes are computed.
  EXPECT_EQ(again.usage.cached_tokens, 20);
  EXPECT_EQ(computed, 1 + 2);
  const EngineStats st = e->stats();
  EXPECT_EQ(st.kv_host_blocks_total, 64);
  EXPECT_GT(st.kv_blocks_offloaded, 0);
  EXPECT_EQ(st.kv_blocks_onboarded, 5);
  EXPECT_GT(st.kv_host_blocks_used, 0);

  // The events tell the router: A's blocks went to the host tier and came back to the device.
  kv::KvBlockSet set;
  for (const auto& m : events) ASSERT_TRUE(set.apply(m).isOk());
  const auto hashes = kv::blockHashes(kv::rootHash("fake", ""), a, kBlock);
  ASSERT_EQ(hashes.size(), 5u);
  for (size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_TRUE(set.contains(hashes[i], kv::Tier::kHost)) << i;
    EXPECT_TRUE(set.contains(hashes[i], kv::Tier::kDevice)) << i;
  }
  EXPECT_EQ(set.size(kv::Tier::kHost), static_cast<size_t>(st.kv_host_blocks_used));
}

TEST(KvTiers, DiskTierAloneAndBehindATinyHostTier) {
  for (const size_t host_blocks : {size_t{0}, size_t{2}}) {
    FakeRunner* runner = nullptr;
    const std::string dir = std::filesystem::temp_directory_path().string();
    auto e = fakeEngine(12, {host_blocks * fakeBlockBytes(), 64 * fakeBlockBytes(), dir}, &runner);
    std::mt19937 rng(2);
    const auto a = randomPrompt(rng, 21, kVocab);
    int64_t computed = 0;
    const RunResult again = evictAndRepeat(*e, *runner, a, 4, &computed);
    EXPECT_EQ(again.usage.cached_tokens, 20) << "host blocks " << host_blocks;
    EXPECT_EQ(computed, 1 + 2);
    const EngineStats st = e->stats();
    EXPECT_EQ(st.kv_disk_blocks_total, 64);
    EXPECT_GT(st.kv_disk_blocks_used, 0);
    EXPECT_EQ(st.kv_blocks_onboarded, 5);
  }
}

TEST(KvTiers, ResetPrefixCacheClearsTheTiers) {
  FakeRunner* runner = nullptr;
  auto e = fakeEngine(12, {64 * fakeBlockBytes(), 0, ""}, &runner);
  std::mt19937 rng(3);
  const auto a = randomPrompt(rng, 21, kVocab);
  for (int i = 0; i < 5; ++i) {
    const auto p = i == 0 ? a : randomPrompt(rng, 21, kVocab);
    run(*e, greedyRequest("p" + std::to_string(i), p, 2));
  }
  EXPECT_GT(e->stats().kv_host_blocks_used, 0);
  e->resetPrefixCache();
  e->sync();
  EXPECT_EQ(e->stats().kv_host_blocks_used, 0);
  EXPECT_EQ(run(*e, greedyRequest("again", a, 2)).usage.cached_tokens, 0);
}

// Many concurrent requests over a few shared prefixes, a pool too small for them (evictions and
// preemptions), a 6-block host tier and a 16-block disk tier: every output is the one the
// request has alone, and the tiers were used.
TEST(KvTiers, ConcurrentSharedPrefixesUnderPressureStayExact) {
  FakeRunner* runner = nullptr;
  const std::string dir = std::filesystem::temp_directory_path().string();
  auto e = fakeEngine(24, {6 * fakeBlockBytes(), 16 * fakeBlockBytes(), dir}, &runner);
  std::mt19937 rng(4);
  std::vector<std::vector<int32_t>> roots;
  for (int i = 0; i < 5; ++i) roots.push_back(randomPrompt(rng, 12 + 4 * i, kVocab));
  for (int wave = 0; wave < 6; ++wave) {
    std::vector<Request> reqs;
    for (int i = 0; i < 8; ++i) {
      auto p = roots[rng() % roots.size()];
      const auto tail = randomPrompt(rng, static_cast<int32_t>(rng() % 9), kVocab);
      p.insert(p.end(), tail.begin(), tail.end());
      reqs.push_back(greedyRequest("w" + std::to_string(wave) + "-" + std::to_string(i), p,
                                   1 + static_cast<int32_t>(rng() % 6)));
    }
    std::vector<std::shared_ptr<OutputStream>> streams;
    for (const auto& r : reqs) streams.push_back(*e->addStream(r));
    for (size_t i = 0; i < reqs.size(); ++i) {
      std::vector<int32_t> got;
      Status status;
      while (auto o = streams[i]->next()) {
        got.insert(got.end(), o->token_ids.begin(), o->token_ids.end());
        if (o->finished()) status = o->status;
      }
      ASSERT_TRUE(status.isOk()) << status.toString();
      EXPECT_EQ(got, fakeGreedy(reqs[i].token_ids, kVocab, *reqs[i].stop.max_tokens))
          << reqs[i].request_id;
    }
  }
  const EngineStats st = e->stats();
  EXPECT_GT(st.kv_blocks_offloaded, 0);
  EXPECT_GT(st.kv_blocks_onboarded, 0);
  EXPECT_GT(st.kv_disk_blocks_used, 0);
}

TEST(KvTiers, RefusesWhatCannotWork) {
  const auto make = [](std::unique_ptr<ModelRunner> r, bool caching, KvTierOptions t) {
    EngineOptions o;
    o.enable_prefix_caching = caching;
    o.kv_tiers = std::move(t);
    return Engine::create(std::move(r), o).status();
  };
  const KvTierOptions host{1 << 20, 0, ""};
  EXPECT_EQ(make(std::make_unique<FakeRunner>(kVocab, kBlock, 8, 64), false, host).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(make(std::make_unique<testing::NoopRunner>(kVocab, kBlock, 8, 64), true, host).code(),
            StatusCode::kFailedPrecondition);
  const Status small = make(std::make_unique<FakeRunner>(kVocab, kBlock, 8, 64), true, {8, 0, ""});
  EXPECT_EQ(small.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(small.message().find("holds no block"), std::string::npos) << small.message();
  const Status dir = make(std::make_unique<FakeRunner>(kVocab, kBlock, 8, 64), true,
                          {0, 1 << 20, "/nonexistent/kv-tier"});
  EXPECT_EQ(dir.code(), StatusCode::kIoError);
}

// The real tiny model: the continuation of a prompt whose blocks came back from the host tier is
// the one computed from scratch.
TEST(KvTiers, TinyModelOnboardedPrefixGivesTheSameTokens) {
  const auto weights = testing::tinyWeights(5, "kv_tiers_tiny");
  ASSERT_TRUE(weights);
  const auto engine = [&](KvTierOptions tiers) {
    LlamaModelOptions lo;
    lo.threads = 2;
    lo.block_size = 16;
    lo.num_blocks = 10;
    lo.max_model_len = 160;
    auto m = LlamaModel::create(weights, lo);
    EXPECT_TRUE(m.isOk()) << m.status().toString();
    const size_t block_bytes = (*m)->blockBytes();
    EngineOptions eo;
    eo.model_id = "tiny";
    tiers.host_bytes *= block_bytes;  // given in blocks below
    tiers.disk_bytes *= block_bytes;
    eo.kv_tiers = tiers;
    auto e = Engine::create(std::move(m).value(), eo);
    EXPECT_TRUE(e.isOk()) << e.status().toString();
    return std::move(e).value();
  };
  std::mt19937 rng(9);
  const int32_t vocab = weights->config.vocab_size;
  const auto a = randomPrompt(rng, 70, vocab);  // 4 full blocks
  const std::string tmp = std::filesystem::temp_directory_path().string();
  for (const KvTierOptions& tiers : {KvTierOptions{32, 0, ""}, KvTierOptions{0, 32, tmp}}) {
    auto e = engine(tiers);
    const RunResult first = run(*e, greedyRequest("a1", a, 8));
    ASSERT_EQ(first.tokens.size(), 8u);
    for (int i = 0; i < 3; ++i) run(*e, greedyRequest("f" + std::to_string(i), randomPrompt(rng, 70, vocab), 2));
    const RunResult again = run(*e, greedyRequest("a2", a, 8));
    EXPECT_EQ(again.usage.cached_tokens, 64);
    EXPECT_EQ(again.tokens, first.tokens);
    EXPECT_EQ(e->stats().kv_blocks_onboarded, 4);
  }
}

}  // namespace
}  // namespace turbine::engine
