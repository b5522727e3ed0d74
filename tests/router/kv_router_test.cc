// KvRouter: cost function, ties, temperature, busy thresholds, active-block tracking, load
// correction, approximate mode (TTL and cap) and metrics, with an injected clock.
#include "router/kv_router.h"

#include "kv/vllm_events.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace turbine::router {
namespace {

using kv::BlockHash;

std::vector<BlockHash> chain(BlockHash start, int n) {
  std::vector<BlockHash> v;
  for (int i = 0; i < n; ++i) v.push_back(start + static_cast<BlockHash>(i));
  return v;
}

kv::KvEventMessage stored(WorkerId w, uint64_t seq, std::vector<BlockHash> hs) {
  return kv::KvEventMessage{w, seq, {kv::BlockStored{std::move(hs), std::nullopt, kv::Tier::kDevice}}};
}

struct Fixture {
  int64_t now = 0;
  KvRouterOptions opts;
  std::unique_ptr<KvRouter> router;
  explicit Fixture(int workers, KvRouterOptions o = {}) : opts(std::move(o)) {
    opts.now_us = [this] { return now; };
    router = std::make_unique<KvRouter>(opts);
    for (int i = 1; i <= workers; ++i) router->addWorker(WorkerInfo{static_cast<WorkerId>(i), "m", "agg", 16, 1000});
  }
  RouteDecision route(const std::string& id, const std::vector<BlockHash>& hs) {
    auto r = router->route(RouteRequest{id, "m", hs, static_cast<int32_t>(hs.size() * 16)});
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? *r : RouteDecision{};
  }
};

TEST(KvRouterTest, PicksTheWorkerWithTheLongestPrefix) {
  Fixture f(3);
  f.router->onKvEvents(stored(2, 0, chain(100, 8)));
  f.router->onKvEvents(stored(3, 0, chain(100, 3)));
  const auto d = f.route("r1", chain(100, 10));
  EXPECT_EQ(d.worker, 2u);
  EXPECT_EQ(d.overlap_blocks, 8);
  EXPECT_EQ(f.router->activeBlocks(2), 10);  // counted at once
  EXPECT_EQ(f.router->queuedPrefillTokens(2), 2 * 16);
  f.router->onPrefillCompleted("r1");
  EXPECT_EQ(f.router->queuedPrefillTokens(2), 0);
  f.router->onRequestFinished("r1");
  EXPECT_EQ(f.router->activeBlocks(2), 0);
}

// Workers that publish vLLM's events: their blocks, named by vLLM's own digests, are indexed
// under the hashes of their tokens, so a prompt's hashes find them.
TEST(KvRouterTest, RoutesByTheTokensOfVllmWorkersEvents) {
  Fixture f(3);
  const kv::BlockHash root = kv::rootHash("m", "");
  std::vector<int32_t> prompt;
  for (int i = 0; i < 10 * 16; ++i) prompt.push_back(7 * i + 3);
  auto vllmStored = [&](std::vector<kv::BlockHash> names, int blocks) {
    kv::VllmEvent e;
    e.event = kv::BlockStored{std::move(names), std::nullopt, kv::Tier::kDevice};
    e.token_ids.assign(prompt.begin(), prompt.begin() + blocks * 16);
    e.block_size = 16;
    kv::VllmEventBatch b;
    b.events.push_back(std::move(e));
    return b;
  };
  kv::VllmBlockTranslator t2(root, 16), t3(root, 16);
  f.router->onKvEvents(t2.translate(vllmStored({0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6}, 6), 2, 0));
  f.router->onKvEvents(t3.translate(vllmStored({0xb1, 0xb2}, 2), 3, 0));
  const auto d = f.route("r1", kv::blockHashes(root, prompt, 16));
  EXPECT_EQ(d.worker, 2u);
  EXPECT_EQ(d.overlap_blocks, 6);
  // vLLM evicts worker 2's last four blocks (by its names): worker 3's two now tie with its two.
  kv::VllmEventBatch removed;
  removed.events.push_back(kv::VllmEvent{kv::BlockRemoved{{0xa3, 0xa4, 0xa5, 0xa6}, kv::Tier::kDevice}, {}, 0, {}, ""});
  f.router->onKvEvents(t2.translate(removed, 2, 1));
  f.router->onRequestFinished("r1");
  const auto e = f.route("r2", kv::blockHashes(root, prompt, 16));
  EXPECT_EQ(e.overlap_blocks, 2);
  EXPECT_NE(e.worker, 1u);
}

TEST(KvRouterTest, CostTradesOverlapAgainstActiveBlocks) {
  // cost(w) = weight * (10 - overlap(w)) + active(w). Worker 1 holds 8 of the 10 blocks but
  // reports 20 active blocks: with weight 1, cost 2 + 20 = 22 > worker 2's 10 + 0.
  KvRouterOptions one;
  one.overlap_weight = 1.0;
  Fixture f(2, one);
  f.router->onKvEvents(stored(1, 0, chain(100, 8)));
  f.router->onLoad(kv::LoadMetrics{1, "agg", 2, 0, 1000, 20, 0, 0, 0, 0});
  EXPECT_EQ(f.route("r", chain(100, 10)).worker, 2u);
  // With overlap_weight 10 the cache wins: 10 * 2 + 20 = 40 < 10 * 10 + 0.
  KvRouterOptions o;
  o.overlap_weight = 10.0;
  Fixture g(2, o);
  g.router->onKvEvents(stored(1, 0, chain(100, 8)));
  g.router->onLoad(kv::LoadMetrics{1, "agg", 2, 0, 1000, 20, 0, 0, 0, 0});
  EXPECT_EQ(g.route("r", chain(100, 10)).worker, 1u);
  // The default weight (8): 8 * 2 + 20 = 36 < 8 * 10 + 0, the cache wins too.
  Fixture d(2);
  d.router->onKvEvents(stored(1, 0, chain(100, 8)));
  d.router->onLoad(kv::LoadMetrics{1, "agg", 2, 0, 1000, 20, 0, 0, 0, 0});
  EXPECT_EQ(d.route("r", chain(100, 10)).worker, 1u);
  // Weight 0: pure load balancing, the cache is ignored.
  KvRouterOptions z;
  z.overlap_weight = 0.0;
  Fixture h(2, z);
  h.router->onKvEvents(stored(1, 0, chain(100, 8)));
  h.router->onLoad(kv::LoadMetrics{1, "agg", 2, 0, 1000, 1, 0, 0, 0, 0});
  EXPECT_EQ(h.route("r", chain(100, 10)).worker, 2u);
}

TEST(KvRouterTest, TiesGoToTheLeastLoadedThenRandom) {
  Fixture f(3);
  // Worker 3 carries load; workers 1 and 2 are idle and tie.
  f.router->onKvEvents(stored(3, 0, chain(1, 4)));
  f.route("load", chain(1, 4));  // overlap 4 on worker 3: cost 0
  EXPECT_EQ(f.router->activeBlocks(3), 4);
  std::set<WorkerId> seen;
  for (int i = 0; i < 64; ++i) {
    const auto d = f.route("t" + std::to_string(i), chain(1000 + 100 * i, 4));
    seen.insert(d.worker);
    f.router->onRequestFinished("t" + std::to_string(i));
  }
  // cost(1) = cost(2) = 4, cost(3) = 4 + 4: only 1 and 2, both chosen sometimes.
  EXPECT_EQ(seen, (std::set<WorkerId>{1, 2}));
  // Equal cost, different load (weight 1): cost(1) = 0 + 6 (overlap 6/6, active 6); cost(2) = 6 + 0.
  KvRouterOptions one;
  one.overlap_weight = 1.0;
  Fixture g(2, one);
  g.router->onKvEvents(stored(1, 0, chain(1, 6)));
  g.route("a", chain(1, 6));  // -> 1
  ASSERT_EQ(g.router->activeBlocks(1), 6);
  for (int i = 0; i < 10; ++i) {  // cost 0 + 6 on worker 1 ties 6 + 0 on worker 2: less loaded wins
    EXPECT_EQ(g.route("b" + std::to_string(i), chain(1, 6)).worker, 2u) << i;
    g.router->onRequestFinished("b" + std::to_string(i));
  }
}

TEST(KvRouterTest, TemperatureSpreadsChoices) {
  KvRouterOptions o;
  o.temperature = 1000.0;  // costs differ by a few blocks: nearly uniform
  Fixture f(4, o);
  f.router->onKvEvents(stored(1, 0, chain(1, 4)));
  std::map<WorkerId, int> count;
  for (int i = 0; i < 400; ++i) {
    ++count[f.route("r" + std::to_string(i), chain(1, 4)).worker];
    f.router->onRequestFinished("r" + std::to_string(i));
  }
  EXPECT_EQ(count.size(), 4u);
  for (auto& [w, n] : count) EXPECT_GT(n, 50) << w;
  // Low temperature: the minimum wins nearly always.
  KvRouterOptions cold;
  cold.temperature = 0.05;
  Fixture g(4, cold);
  g.router->onKvEvents(stored(1, 0, chain(1, 4)));
  int wins = 0;
  for (int i = 0; i < 100; ++i) {
    wins += g.route("r" + std::to_string(i), chain(1, 4)).worker == 1 ? 1 : 0;
    g.router->onRequestFinished("r" + std::to_string(i));
  }
  EXPECT_EQ(wins, 100);
}

TEST(KvRouterTest, BusyWorkersAreSkipped) {
  KvRouterOptions o;
  o.busy_prefill_tokens = 100;
  o.overlap_weight = 10.0;
  Fixture f(2, o);
  f.router->onKvEvents(stored(1, 0, chain(1, 20)));
  // 470 tokens = 30 blocks, 20 cached on worker 1: cost 100 vs 300. Queues 150 prefill tokens.
  auto a = f.router->route(RouteRequest{"a", "m", chain(1, 20), 20 * 16 + 150});
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->worker, 1u);
  EXPECT_EQ(f.router->queuedPrefillTokens(1), 150);
  // Worker 1 would win (0 + 30 < 200) but is busy.
  EXPECT_EQ(f.route("c", chain(1, 20)).worker, 2u);
  EXPECT_GE(f.router->stats().busy_skips, 1u);
  // Once a's prefill is done, worker 1 is no longer busy.
  f.router->onPrefillCompleted("a");
  EXPECT_EQ(f.route("d", chain(1, 20)).worker, 1u);
  // All busy: still routed (never refused for load).
  ASSERT_TRUE(f.router->route(RouteRequest{"e", "m", chain(500, 20), 20 * 16 + 150}).isOk());
  ASSERT_TRUE(f.router->route(RouteRequest{"f", "m", chain(900, 20), 20 * 16 + 150}).isOk());
  EXPECT_TRUE(f.router->route(RouteRequest{"g", "m", chain(1, 3), 48}).isOk());
}

TEST(KvRouterTest, BusyKvFraction) {
  KvRouterOptions o;
  o.busy_kv_fraction = 0.01;  // 10 of 1000 blocks
  Fixture f(2, o);
  f.router->onKvEvents(stored(1, 0, chain(1, 12)));
  EXPECT_EQ(f.route("a", chain(1, 12)).worker, 1u);  // now 12 active on 1: busy
  EXPECT_EQ(f.route("b", chain(1, 12)).worker, 2u);
}

TEST(KvRouterTest, MakeRouterPassesTheThresholdsThroughAndValidatesThem) {
  RouterOptions ro;
  ro.policy = "kv";
  ro.busy_kv_fraction = 0.01;  // 10 of 1000 blocks
  auto r = makeRouter(ro);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  for (WorkerId w = 1; w <= 2; ++w) (*r)->addWorker({w, "m", "agg", 16, 1000});
  (*r)->onKvEvents(stored(1, 0, chain(1, 12)));
  EXPECT_EQ((*r)->route(RouteRequest{"a", "m", chain(1, 12), 12 * 16})->worker, 1u);  // 12 active: busy
  EXPECT_EQ((*r)->route(RouteRequest{"b", "m", chain(1, 12), 12 * 16})->worker, 2u);
  ro.busy_kv_fraction = 1.5;
  EXPECT_EQ(makeRouter(ro).status().code(), StatusCode::kInvalidArgument);
  ro.busy_kv_fraction = 0;
  ro.busy_prefill_tokens = -1;
  EXPECT_EQ(makeRouter(ro).status().code(), StatusCode::kInvalidArgument);
  ro.busy_prefill_tokens = 0;
  ro.queued_prefill_weight = -2;
  EXPECT_NE(makeRouter(ro).status().message().find("queued_prefill_weight"), std::string::npos);
}

TEST(KvRouterTest, PredictionsMakeABurstFollowTheFirstRequest) {
  KvRouterOptions o;
  o.overlap_weight = 2.0;  // cost 0 + 16 active on the first worker < 2 * 16 elsewhere
  Fixture f(8, o);
  const auto first = f.route("r0", chain(1, 16));
  for (int i = 1; i < 4; ++i) {
    const auto d = f.route("r" + std::to_string(i), chain(1, 16));
    EXPECT_EQ(d.worker, first.worker);
    EXPECT_EQ(d.overlap_blocks, 16);
    f.router->onRequestFinished("r" + std::to_string(i));
  }
}

TEST(KvRouterTest, LoadMetricsCorrectActiveBlocks) {
  Fixture f(2);
  f.route("a", chain(1, 5));
  const WorkerId w = f.router->activeBlocks(1) == 5 ? 1 : 2;
  // Another frontend's requests: the worker reports 40 used blocks.
  f.router->onLoad(kv::LoadMetrics{w, "agg", 3, 0, 1000, 40, 0, 0, 0, 0});
  EXPECT_EQ(f.router->activeBlocks(w), 40);
  f.route("b", chain(100, 7));  // goes to the other worker (cost 7 vs 47)
  EXPECT_EQ(f.router->activeBlocks(w), 40);
  f.router->onLoad(kv::LoadMetrics{w, "agg", 0, 0, 1000, 0, 0, 0, 0, 0});
  EXPECT_EQ(f.router->activeBlocks(w), 5);  // never below what this router itself routed there
  f.router->onRequestFinished("a");
  EXPECT_EQ(f.router->activeBlocks(w), 0);
}

TEST(KvRouterTest, AReportTakenBeforeAFinishDoesNotBringTheFinishedBlocksBack) {
  Fixture f(2);
  f.route("a", chain(1, 16));
  const WorkerId w = f.router->activeBlocks(1) == 16 ? 1 : 2;
  f.router->onLoad(kv::LoadMetrics{w, "agg", 1, 0, 1000, 16, 0, 0, 0, 0});
  f.router->onRequestFinished("a");
  EXPECT_EQ(f.router->activeBlocks(w), 0);
  // A report the worker took while "a" still ran arrives after the final chunk.
  f.router->onLoad(kv::LoadMetrics{w, "agg", 1, 0, 1000, 16, 0, 0, 0, 0});
  EXPECT_EQ(f.router->activeBlocks(w), 0);
  // So the repeated prefix still goes where it is cached (cost 0 vs 16), not elsewhere.
  EXPECT_EQ(f.route("b", chain(1, 16)).worker, w);
  // The next report is exact again: 3 blocks of another frontend's request.
  f.router->onLoad(kv::LoadMetrics{w, "agg", 1, 0, 1000, 19, 0, 0, 0, 0});
  EXPECT_EQ(f.router->activeBlocks(w), 19);
}

TEST(KvRouterTest, ApproximateModeLearnsFromItsOwnDecisionsWithTtlAndCap) {
  KvRouterOptions o;
  o.use_kv_events = false;
  o.approx_ttl_ms = 1000;
  o.prediction_cap = 40;
  Fixture f(4, o);
  const auto d = f.route("a", chain(1, 10));
  f.router->onRequestFinished("a");
  f.router->onKvEvents(stored(d.worker % 4 + 1, 0, chain(1, 10)));  // ignored in this mode
  f.now = 500'000;
  const auto d2 = f.route("b", chain(1, 10));
  EXPECT_EQ(d2.worker, d.worker);
  EXPECT_EQ(d2.overlap_blocks, 10);
  f.router->onRequestFinished("b");
  f.now = 1'600'000;  // 1.1 s after the last touch: forgotten
  const auto d3 = f.route("c", chain(1, 10));
  EXPECT_EQ(d3.overlap_blocks, 0);
  f.router->onRequestFinished("c");
  // Cap: 5 distinct prompts of 10 blocks -> at most 40 predictions kept.
  for (int i = 0; i < 5; ++i) {
    f.route("p" + std::to_string(i), chain(1000 * (i + 2), 10));
    f.router->onRequestFinished("p" + std::to_string(i));
  }
  f.route("q", chain(99999, 1));
  EXPECT_LE(f.router->stats().index_predictions, 41u);
  EXPECT_EQ(f.router->stats().events_applied, 0u);
}

TEST(KvRouterTest, MetricsAndErrors) {
  Fixture f(2);
  EXPECT_EQ(f.router->route(RouteRequest{"x", "other", {}, 0}).status().code(), StatusCode::kUnavailable);
  f.router->onKvEvents(stored(1, 0, chain(1, 4)));
  f.router->onKvEvents(stored(1, 2, chain(50, 1)));  // seq 1 missing
  const auto d = f.route("r", chain(1, 4));
  f.router->onUsage("r", 48);
  f.router->onRequestFinished("r");
  const auto s = f.router->stats();
  EXPECT_EQ(d.overlap_blocks, 4);
  EXPECT_EQ(s.seq_gaps, 1u);
  EXPECT_EQ(s.events_applied, 2u);
  EXPECT_EQ(s.requests_routed, 1u);
  EXPECT_EQ(s.usage_reports, 1u);
  EXPECT_EQ(s.predicted_cached_tokens, 64);
  EXPECT_EQ(s.actual_cached_tokens, 48);
  EXPECT_EQ(s.abs_error_tokens, 16);
  EXPECT_EQ(s.index_hashes, 5u);
  EXPECT_GT(s.index_bytes, 0u);
  EXPECT_EQ(s.decision_latency.count(), 1u);
  uint64_t routed = 0;
  for (auto& [w, n] : s.routed_per_worker) routed += n;
  EXPECT_EQ(routed, 1u);
  RouterOptions bad;
  bad.temperature = -1;
  EXPECT_FALSE(makeKvRouter(bad).isOk());
}

TEST(KvRouterTest, AnIndexSizedUpFrontDoesNotGrow) {
  // --router-index-blocks: the table is allocated for that many distinct blocks at start, so
  // storing them never doubles it (a doubling holds two tables until its pages have moved).
  auto bytesAfterStoring = [](size_t index_blocks) {
    RouterOptions ro;
    ro.index_blocks = index_blocks;
    auto made = makeKvRouter(ro);
    EXPECT_TRUE(made.isOk());
    auto& router = dynamic_cast<KvRouter&>(**made);
    router.addWorker(WorkerInfo{1, "m", "agg", 16, 1000});
    const size_t before = router.stats().index_bytes;
    for (uint64_t seq = 0; seq < 30; ++seq) router.onKvEvents(stored(1, seq, chain(1 + seq * 100, 100)));
    EXPECT_EQ(router.stats().index_hashes, 3000u);
    return std::pair{before, router.stats().index_bytes};
  };
  const auto [sized_before, sized_after] = bytesAfterStoring(3000);
  EXPECT_EQ(sized_after, sized_before);
  EXPECT_GE(sized_before, 3000u * 4 / 3 * 16);  // 16-byte slots at most 3/4 full
  const auto [grown_before, grown_after] = bytesAfterStoring(0);
  EXPECT_GT(grown_after, grown_before);
}

TEST(KvRouterTest, QueuedPrefillTermWeighsPendingPrefillWork) {
  for (double qpw : {0.0, 1.0}) {
    KvRouterOptions o;
    o.overlap_weight = 3.0;
    o.queued_prefill_weight = qpw;
    Fixture f(2, o);
    f.router->onKvEvents(stored(1, 0, chain(1, 10)));
    // 20 blocks (320 tokens), 10 cached on worker 1: cost(1) = 3 * 10 = 30 < cost(2) = 60.
    auto a = f.router->route(RouteRequest{"a", "m", chain(1, 10), 320});
    ASSERT_TRUE(a.isOk());
    ASSERT_EQ(a->worker, 1u);
    ASSERT_EQ(f.router->queuedPrefillTokens(1), 160);  // 10 blocks of prefill queued there
    // A fully cached 10-block request: cost(1) = 0 + 20 active (+ 3 * 10 queued) vs 3 * 10.
    const auto d = f.route("b", chain(1, 10));
    EXPECT_EQ(d.worker, qpw > 0 ? 2u : 1u) << "queued_prefill_weight " << qpw;
    f.router->onRequestFinished("b");
    f.router->onPrefillCompleted("a");
    EXPECT_EQ(f.router->queuedPrefillTokens(1), 0);
  }
}

TEST(KvRouterTest, TiesAmongManyIdleWorkersAreUniform) {
  Fixture f(8);
  std::map<WorkerId, int> count;
  for (int i = 0; i < 1600; ++i) {
    ++count[f.route("r" + std::to_string(i), chain(10'000 * (i + 1), 4)).worker];
    f.router->onRequestFinished("r" + std::to_string(i));
  }
  ASSERT_EQ(count.size(), 8u);
  for (auto& [w, n] : count) {
    EXPECT_GT(n, 140) << w;  // expected 200 each
    EXPECT_LT(n, 260) << w;
  }
}

// Events are buffered until a round's worth of blocks has arrived or something reads the index.
// A router whose stats() is read after every message applies each message at once (as before the
// buffering); another gets the same stream unread. Both must decide alike at every step: small
// messages of several workers, tiers, removals, clears, seq gaps, workers leaving and joining.
TEST(KvRouterTest, BufferedEventsDecideAsEventsAppliedAtOnce) {
  std::mt19937_64 rng(11);
  Fixture eager(6), buffered(6);
  std::map<WorkerId, uint64_t> seq;
  WorkerId next_worker = 7;
  std::vector<WorkerId> live = {1, 2, 3, 4, 5, 6};
  auto both = [&](const auto& fn) {
    fn(eager);
    fn(buffered);
  };
  for (int step = 0; step < 3000; ++step) {
    const auto r = rng() % 100;
    const WorkerId w = live[rng() % live.size()];
    // Prompts: chains from 8 roots, so that workers share prefixes.
    const BlockHash root = 1000 * (1 + rng() % 8);
    if (r < 70) {
      kv::KvEventMessage msg{w, seq[w]++, {}};
      if (rng() % 50 == 0) ++seq[w];  // a gap now and then
      const int n_events = 1 + static_cast<int>(rng() % 2);
      for (int e = 0; e < n_events; ++e) {
        const auto kind = rng() % 20;
        const auto tier = static_cast<kv::Tier>(rng() % kv::kNumTiers);
        std::vector<BlockHash> hs = chain(root + rng() % 6, 1 + static_cast<int>(rng() % 5));
        if (kind < 12) {
          msg.events.push_back(kv::BlockStored{std::move(hs), std::nullopt, tier});
        } else if (kind < 19) {
          msg.events.push_back(kv::BlockRemoved{std::move(hs), tier});
        } else {
          msg.events.push_back(kv::AllCleared{});
        }
      }
      eager.router->onKvEvents(msg);
      (void)eager.router->stats();  // applies it now
      buffered.router->onKvEvents(msg);
    } else if (r < 97) {
      const auto hs = chain(root, 1 + static_cast<int>(rng() % 8));
      const std::string id = "r" + std::to_string(step);
      const RouteDecision a = eager.route(id, hs), b = buffered.route(id, hs);
      ASSERT_EQ(a.worker, b.worker) << step;
      ASSERT_EQ(a.overlap_blocks, b.overlap_blocks) << step;
      both([&](Fixture& f) { f.router->onRequestFinished(id); });
    } else if (live.size() > 2) {  // a worker leaves; a new one takes its slot
      live.erase(std::find(live.begin(), live.end(), w));
      const WorkerId joined = next_worker++;
      live.push_back(joined);
      both([&](Fixture& f) {
        f.router->removeWorker(w);
        f.router->addWorker(WorkerInfo{joined, "m", "agg", 16, 1000});
      });
    }
  }
  const auto a = eager.router->stats(), b = buffered.router->stats();
  EXPECT_EQ(a.index_hashes, b.index_hashes);
  EXPECT_EQ(a.index_entries, b.index_entries);
  EXPECT_EQ(a.index_predictions, b.index_predictions);
  EXPECT_EQ(a.blocks_applied, b.blocks_applied);
  EXPECT_EQ(a.seq_gaps, b.seq_gaps);
  EXPECT_GT(a.seq_gaps, 0u);
}

// On an index large enough that a clear moves the worker to a fresh slot (its old one swept
// meanwhile): random messages (stores, removes, clears, several per message), workers leaving
// and joining, and decisions, each finished at once so that every worker's load is 0. Each
// decision must go to a worker with the longest run of the prompt held or predicted, per a
// reference of what each worker id holds (stored, minus removed and cleared) and was predicted
// (earlier decisions' prompts, until an event names the block or the worker clears).
TEST(KvRouterTest, ClearedWorkersRouteByWhatTheyHoldSinceTheClear) {
  KvRouterOptions opts;
  opts.index_blocks = 60'000;  // a table of 2^17 slots: clears are swept
  Fixture f(6, opts);
  std::mt19937_64 rng(23);
  std::map<WorkerId, std::set<BlockHash>> real, predicted;
  std::map<WorkerId, uint64_t> seq;
  std::vector<WorkerId> live = {1, 2, 3, 4, 5, 6};
  WorkerId next_worker = 7;
  auto runOf = [&](WorkerId w, const std::vector<BlockHash>& hs) {
    int32_t n = 0;
    while (n < static_cast<int32_t>(hs.size()) && (real[w].count(hs[n]) || predicted[w].count(hs[n]))) ++n;
    return n;
  };
  int clears = 0, checked = 0;
  for (int step = 0; step < 4000; ++step) {
    const auto r = rng() % 100;
    const WorkerId w = live[rng() % live.size()];
    const BlockHash root = 1000 * (1 + rng() % 8);
    if (r < 60) {
      kv::KvEventMessage msg{w, seq[w]++, {}};
      const int n_events = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < n_events; ++e) {
        const auto kind = rng() % 20;
        const std::vector<BlockHash> hs = chain(root + rng() % 6, 1 + static_cast<int>(rng() % 5));
        if (kind < 12) {
          msg.events.push_back(kv::BlockStored{hs, std::nullopt, kv::Tier::kDevice});
          for (BlockHash h : hs) real[w].insert(h), predicted[w].erase(h);
        } else if (kind < 18) {
          msg.events.push_back(kv::BlockRemoved{hs, kv::Tier::kDevice});
          for (BlockHash h : hs) real[w].erase(h), predicted[w].erase(h);
        } else {
          msg.events.push_back(kv::AllCleared{});
          real[w].clear();
          predicted[w].clear();
          ++clears;
        }
      }
      f.router->onKvEvents(msg);
    } else if (r < 98) {
      const auto hs = chain(root, 1 + static_cast<int>(rng() % 8));
      const std::string id = "r" + std::to_string(step);
      const RouteDecision d = f.route(id, hs);
      int32_t best = 0;
      for (WorkerId x : live) best = std::max(best, runOf(x, hs));
      ASSERT_EQ(d.overlap_blocks, runOf(d.worker, hs)) << step;
      ASSERT_EQ(d.overlap_blocks, best) << step;
      for (BlockHash h : hs) {
        if (!real[d.worker].count(h)) predicted[d.worker].insert(h);
      }
      f.router->onRequestFinished(id);
      ++checked;
    } else if (live.size() > 2) {  // a worker leaves; a new one joins
      live.erase(std::find(live.begin(), live.end(), w));
      real.erase(w);
      predicted.erase(w);
      f.router->removeWorker(w);
      live.push_back(next_worker);
      f.router->addWorker(WorkerInfo{next_worker++, "m", "agg", 16, 1000});
    }
  }
  EXPECT_GT(clears, 100);
  EXPECT_GT(checked, 1000);
}

// A worker clearing its cache on a large index goes on under a fresh slot: its requests in
// flight, load, sequence numbers and model stay with it; its old blocks stop counting at once and
// what it stores after the clear (in the same message too) counts at once.
TEST(KvRouterTest, AWorkerClearingItsCacheKeepsItsRequestsAndLoad) {
  KvRouterOptions opts;
  opts.index_blocks = 60'000;
  Fixture f(3, opts);
  f.router->onKvEvents(stored(1, 0, chain(100, 8)));
  const auto first = f.route("p1", chain(100, 8));
  ASSERT_EQ(first.worker, 1u);
  EXPECT_EQ(first.overlap_blocks, 8);
  const int64_t active = f.router->activeBlocks(1);
  EXPECT_EQ(active, 8);
  f.router->onKvEvents(kv::KvEventMessage{1, 1, {kv::AllCleared{}, kv::BlockStored{chain(500, 4), std::nullopt, kv::Tier::kDevice}}});
  EXPECT_EQ(f.router->activeBlocks(1), active);
  // The old blocks are gone from routing: worker 1 has no overlap there and the most load.
  const auto after = f.route("q1", chain(100, 8));
  EXPECT_NE(after.worker, 1u);
  EXPECT_EQ(after.overlap_blocks, 0);
  f.router->onRequestFinished("q1");
  const auto fresh = f.route("q2", chain(500, 4));
  EXPECT_EQ(fresh.worker, 1u);
  EXPECT_EQ(fresh.overlap_blocks, 4);
  f.router->onRequestFinished("q2");
  f.router->onRequestFinished("p1");  // routed before the clear: released on the new slot
  EXPECT_EQ(f.router->activeBlocks(1), 0);
  const auto st = f.router->stats();
  const auto routed = std::find_if(st.routed_per_worker.begin(), st.routed_per_worker.end(),
                                   [](const auto& p) { return p.first == 1; });
  ASSERT_NE(routed, st.routed_per_worker.end());
  EXPECT_EQ(routed->second, 2u);  // p1 and q2, on either side of the clear
  // The old slot's entries are swept a slice per decision (the table has 256 slices).
  auto held = [&] {
    const auto s = f.router->stats();
    return s.index_entries - s.index_predictions;
  };
  EXPECT_EQ(held(), 8u + 4u);
  size_t n = 0;
  for (; held() != 4 && n < 1000; ++n) {
    f.route("s" + std::to_string(n), chain(900, 2));
    f.router->onRequestFinished("s" + std::to_string(n));
  }
  EXPECT_GT(n, 100u);
  EXPECT_LT(n, 1000u);
  // q1's worker is predicted to hold chain(100, 8) now; worker 1 stores a longer run of it.
  f.router->onKvEvents(stored(1, 2, chain(100, 10)));  // the next seq: no gap
  EXPECT_EQ(f.router->stats().seq_gaps, 0u);
  const auto back = f.route("r", chain(100, 10));
  EXPECT_EQ(back.worker, 1u);
  EXPECT_EQ(back.overlap_blocks, 10);
  f.router->onRequestFinished("r");
  f.router->removeWorker(1);
  EXPECT_NE(f.route("t", chain(100, 8)).worker, 1u);
}

// A stored event's tier weighs its blocks: 8 blocks on disk (weight 0.5) count 4, less than 6
// on device.
TEST(KvRouterTest, StoredTiersWeighTheOverlap) {
  Fixture f(2);
  f.router->onKvEvents(kv::KvEventMessage{1, 0, {kv::BlockStored{chain(100, 8), std::nullopt, kv::Tier::kDisk}}});
  f.router->onKvEvents(stored(2, 0, chain(100, 6)));
  EXPECT_EQ(f.route("r", chain(100, 10)).worker, 2u);
}

// A leaving worker's buffered events are applied before its slot is recycled: the worker that
// takes the slot inherits nothing.
TEST(KvRouterTest, AWorkerJoiningInALeftSlotInheritsNoBufferedEvents) {
  Fixture f(2);
  for (uint64_t i = 0; i < 4; ++i) f.router->onKvEvents(stored(2, i, {500 + i}));  // buffered
  f.router->removeWorker(2);
  f.router->addWorker(WorkerInfo{3, "m", "agg", 16, 1000});  // slot 2's, recycled
  EXPECT_EQ(f.router->stats().index_hashes, 0u);
  const auto d = f.route("r", chain(500, 4));
  EXPECT_EQ(d.overlap_blocks, 0);
}

TEST(LatencyHistogramTest, Quantiles) {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.record(i * 10);
  const auto p50 = h.quantileNs(0.5);
  const auto p99 = h.quantileNs(0.99);
  EXPECT_GE(p50, 5000);
  EXPECT_LE(p50, 5000 * 9 / 8 + 1);
  EXPECT_GE(p99, 9900);
  EXPECT_LE(p99, 9900 * 9 / 8 + 1);
}

}  // namespace
}  // namespace turbine::router
