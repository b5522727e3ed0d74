// KvRouter's pruned decision path (temperature 0, the default) against (1) a straightforward
// full-pass reference written here (its own model of the index, predictions and active blocks:
// the chosen worker must be one of the minimum-(cost, active) workers, with the right overlap), and
// (2) the router's exhaustive path (`exhaustive = true`): same worker, same overlap and same random
// draws, on randomized streams of events (all tiers), decisions, finishes, load reports, busy
// thresholds and workers joining and leaving.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "router/kv_router.h"

namespace turbine::router {
namespace {

using kv::BlockHash;
using kv::Tier;

// Prompts: one of a few chains, cut at a random length, then fresh blocks (so that overlaps vary,
// many workers tie, and the walk stops at every depth).
struct Prompts {
  std::vector<std::vector<BlockHash>> chains;
  BlockHash next_fresh = 1'000'000;
  explicit Prompts(std::mt19937_64& rng) {
    for (int c = 0; c < 4; ++c) {
      chains.emplace_back();
      for (int i = 0; i < 12; ++i) chains.back().push_back(rng() % 900'000 + 1);
    }
  }
  std::vector<BlockHash> make(std::mt19937_64& rng, size_t len) {
    const auto& c = chains[rng() % chains.size()];
    std::vector<BlockHash> v(c.begin(), c.begin() + static_cast<long>(rng() % (c.size() + 1)));
    while (v.size() < len) v.push_back(next_fresh++);
    v.resize(len);
    return v;
  }
};

// The reference: (hash -> worker -> tier bits | predicted bit 4), pending requests, full pass.
struct Reference {
  KvRouterOptions opts;
  std::map<BlockHash, std::map<WorkerId, uint32_t>> held;
  struct Req {
    WorkerId w;
    int64_t blocks, prefill;
  };
  std::map<std::string, Req> pending;
  std::map<WorkerId, int32_t> kv_total;

  uint32_t get(BlockHash h, WorkerId w) const {
    auto it = held.find(h);
    if (it == held.end()) return 0;
    auto jt = it->second.find(w);
    return jt == it->second.end() ? 0 : jt->second;
  }
  void set(BlockHash h, WorkerId w, uint32_t m) {
    if (m != 0) {
      held[h][w] = m;
    } else if (auto it = held.find(h); it != held.end()) {
      it->second.erase(w);
      if (it->second.empty()) held.erase(it);
    }
  }
  double weight(uint32_t m) const {
    double best = (m & 16) ? 1.0 : 0.0;
    for (int t = 0; t < kv::kNumTiers; ++t)
      if (m & (1u << t)) best = std::max(best, opts.tier_weights[t]);
    return best;
  }
  std::pair<int32_t, double> overlap(WorkerId w, const std::vector<BlockHash>& hs) const {
    int32_t run = 0;
    double weighted = 0;
    for (BlockHash h : hs) {
      const uint32_t m = get(h, w);
      if (m == 0) break;
      ++run;
      weighted += weight(m);
    }
    return {run, weighted};
  }
  int64_t active(WorkerId w) const {
    int64_t a = 0;
    for (auto& [id, r] : pending) a += r.w == w ? r.blocks : 0;
    return a;
  }
  int64_t queued(WorkerId w) const {
    int64_t a = 0;
    for (auto& [id, r] : pending) a += r.w == w ? r.prefill : 0;
    return a;
  }
  bool busy(WorkerId w) const {
    const double a = static_cast<double>(active(w));
    if (opts.busy_kv_fraction > 0 && a > opts.busy_kv_fraction * kv_total.at(w)) return true;
    return opts.busy_prefill_tokens > 0 && queued(w) > opts.busy_prefill_tokens;
  }
  // The workers of minimum (cost, active) among the non-busy ones (all when every one is busy).
  std::set<WorkerId> best(const std::vector<BlockHash>& hs, int32_t tokens) const {
    const int64_t blocks = std::max<int64_t>(static_cast<int64_t>(hs.size()), (tokens + 15) / 16);
    std::set<WorkerId> out;
    for (int pass = 0; pass < 2 && out.empty(); ++pass) {
      double bc = 0;
      int64_t ba = 0;
      for (auto& [w, total] : kv_total) {
        if (pass == 0 && busy(w)) continue;
        const double qpw = opts.overlap_weight * opts.queued_prefill_weight;
        const double qterm = qpw > 0 ? qpw * static_cast<double>(queued(w)) / 16 : 0.0;
        const double cost = opts.overlap_weight * (static_cast<double>(blocks) - overlap(w, hs).second) +
                            static_cast<double>(active(w)) + qterm;
        const int64_t act = active(w);
        if (out.empty() || cost < bc || (cost == bc && act < ba)) {
          out = {w};
          bc = cost;
          ba = act;
        } else if (cost == bc && act == ba) {
          out.insert(w);
        }
      }
    }
    return out;
  }
};

kv::KvEventMessage message(WorkerId w, uint64_t seq, kv::KvEvent e) {
  return kv::KvEventMessage{w, seq, {std::move(e)}};
}

Tier randomTier(std::mt19937_64& rng) {
  const uint64_t r = rng() % 8;
  return r < 5 ? Tier::kDevice : static_cast<Tier>(r - 4);  // device mostly, every tier sometimes
}

TEST(KvRouterPrunedTest, ChoosesAMinimumCostWorkerLikeAFullPassReference) {
  for (int variant = 0; variant < 7; ++variant) {
    std::mt19937_64 rng(100 + variant);
    KvRouterOptions o;
    o.overlap_weight = std::array<double, 7>{1.0, 0.5, 2.0, 3.0, 0.0, 1.0, 2.0}[variant];
    o.busy_kv_fraction = variant == 3 ? 0.05 : 0.0;
    o.busy_prefill_tokens = variant == 5 ? 200 : 0;
    o.queued_prefill_weight = variant == 6 ? 0.5 : 0.0;
    o.seed = static_cast<uint64_t>(variant);
    o.prediction_ttl_ms = int64_t{1} << 40;  // the reference does not model expiry
    o.now_us = [] { return int64_t{0}; };
    KvRouter router(o);
    Reference ref;
    ref.opts = o;
    Prompts prompts(rng);
    const int workers = 24 + variant * 13;  // up to 89: more than one 64-bit word of slots
    std::vector<WorkerId> order;
    for (int i = 1; i <= workers; ++i) order.push_back(static_cast<WorkerId>(i * 7));
    std::shuffle(order.begin(), order.end(), rng);
    std::map<WorkerId, uint64_t> seq;
    for (WorkerId w : order) {
      router.addWorker(WorkerInfo{w, "m", "agg", 16, 1000});
      ref.kv_total[w] = 1000;
    }
    int id = 0;
    for (int step = 0; step < 1500; ++step) {
      const uint64_t op = rng() % 10;
      const WorkerId w = order[rng() % order.size()];
      if (op < 3) {
        auto hs = prompts.make(rng, 1 + rng() % 12);
        const Tier t = randomTier(rng);
        router.onKvEvents(message(w, seq[w]++, kv::BlockStored{hs, std::nullopt, t}));
        for (BlockHash h : hs) ref.set(h, w, (ref.get(h, w) | (1u << static_cast<int>(t))) & ~16u);
      } else if (op == 3) {
        auto hs = prompts.make(rng, 1 + rng() % 12);
        const Tier t = randomTier(rng);
        router.onKvEvents(message(w, seq[w]++, kv::BlockRemoved{hs, t}));
        for (BlockHash h : hs) ref.set(h, w, ref.get(h, w) & ~((1u << static_cast<int>(t)) | 16u));
      } else if (op < 8) {
        const auto hs = prompts.make(rng, 1 + rng() % 12);
        const auto tokens = static_cast<int32_t>(hs.size() * 16 + rng() % 40);
        const auto want = ref.best(hs, tokens);
        const std::string rid = "r" + std::to_string(id++);
        auto d = router.route(RouteRequest{rid, "m", hs, tokens});
        ASSERT_TRUE(d.isOk());
        ASSERT_TRUE(want.count(d->worker)) << "variant " << variant << " step " << step;
        const auto [run, weighted] = ref.overlap(d->worker, hs);
        ASSERT_EQ(d->overlap_blocks, run) << "variant " << variant << " step " << step;
        const int64_t blocks = std::max<int64_t>(static_cast<int64_t>(hs.size()), (tokens + 15) / 16);
        ref.pending[rid] = {d->worker, blocks, std::max<int64_t>(tokens - std::min<int64_t>(run * 16, tokens), 0)};
        for (BlockHash h : hs) {
          if ((ref.get(h, d->worker) & 15u) == 0) ref.set(h, d->worker, 16u);
        }
      } else if (!ref.pending.empty()) {
        auto it = ref.pending.begin();
        std::advance(it, static_cast<long>(rng() % ref.pending.size()));
        if (op == 8) {
          router.onRequestFinished(it->first);
          ref.pending.erase(it);
        } else {
          router.onPrefillCompleted(it->first);
          it->second.prefill = 0;
        }
      }
    }
  }
}

// Pruned and exhaustive routers fed the same stream decide identically, draws included.
TEST(KvRouterPrunedTest, DecidesExactlyAsTheExhaustivePath) {
  for (int variant = 0; variant < 10; ++variant) {
    std::mt19937_64 rng(7 + variant);
    int64_t now = 0;
    KvRouterOptions o;
    o.overlap_weight = std::array<double, 10>{1.0, 0.5, 2.0, 1.0, 1.0, 4.0, 1.0, 0.0, 1.0, 3.0}[variant];
    o.busy_kv_fraction = variant == 3 ? 0.02 : 0.0;
    o.busy_prefill_tokens = variant == 4 || variant == 9 ? 100 : 0;
    o.queued_prefill_weight = variant >= 8 ? 0.7 : 0.0;
    o.prediction_cap = variant == 6 ? 50 : size_t{1} << 22;
    o.prediction_ttl_ms = 200;
    o.seed = 42 + static_cast<uint64_t>(variant);
    o.now_us = [&now] { return now; };
    KvRouterOptions e = o;
    e.exhaustive = true;
    KvRouter pruned(o), full(e);
    auto both = [&](auto&& f) {
      f(pruned);
      f(full);
    };
    Prompts prompts(rng);
    const int workers = 70;
    std::map<WorkerId, uint64_t> seq;
    // Some workers' events arrive before they join (their slots are interned first), and the
    // join order is shuffled: slot order differs from join order.
    std::vector<WorkerId> ids;
    for (int i = 1; i <= workers; ++i) ids.push_back(static_cast<WorkerId>(i));
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int i = 0; i < workers; ++i) {
      const WorkerId w = ids[static_cast<size_t>(i)];
      if (i % 5 != 0) continue;
      const auto hs = prompts.make(rng, 3);
      both([&](KvRouter& r) { r.onKvEvents(message(w, 0, kv::BlockStored{hs, std::nullopt, Tier::kDevice})); });
      ++seq[w];
    }
    std::shuffle(ids.begin(), ids.end(), rng);
    for (WorkerId w : ids) {
      both([&](KvRouter& r) { r.addWorker(WorkerInfo{w, w % 9 == 0 ? "other" : "m", "agg", 16, 2000}); });
    }
    std::vector<std::string> open;
    int id = 0;
    for (int step = 0; step < 3000; ++step) {
      now += static_cast<int64_t>(rng() % 3000);
      const uint64_t op = rng() % 16;
      const WorkerId w = static_cast<WorkerId>(1 + rng() % workers);
      if (op < 4) {
        const auto hs = prompts.make(rng, 1 + rng() % 12);
        const Tier t = randomTier(rng);
        both([&](KvRouter& r) { r.onKvEvents(message(w, seq[w], kv::BlockStored{hs, std::nullopt, t})); });
        ++seq[w];
      } else if (op == 4) {
        const auto hs = prompts.make(rng, 1 + rng() % 12);
        const Tier t = randomTier(rng);
        both([&](KvRouter& r) { r.onKvEvents(message(w, seq[w], kv::BlockRemoved{hs, t})); });
        ++seq[w];
      } else if (op == 5 && rng() % 8 == 0) {
        both([&](KvRouter& r) { r.onKvEvents(message(w, seq[w], kv::AllCleared{})); });
        ++seq[w];
      } else if (op == 6) {
        const int32_t used = static_cast<int32_t>(rng() % 60);
        both([&](KvRouter& r) { r.onLoad(kv::LoadMetrics{w, "agg", 1, 0, 2000, used, 0, 0, 0, 0}); });
      } else if (op == 7 && rng() % 10 == 0) {
        both([&](KvRouter& r) { r.removeWorker(w); });
        if (rng() % 2) both([&](KvRouter& r) { r.addWorker(WorkerInfo{w, "m", "agg", 16, 2000}); });
      } else if (op < 13) {
        const auto hs = prompts.make(rng, 1 + rng() % 12);
        const auto tokens = static_cast<int32_t>(hs.size() * 16 + rng() % 40);
        const std::string model = rng() % 10 == 0 ? "other" : "m";
        const std::string rid = "r" + std::to_string(id++);
        auto a = pruned.route(RouteRequest{rid, model, hs, tokens});
        auto b = full.route(RouteRequest{rid, model, hs, tokens});
        ASSERT_EQ(a.isOk(), b.isOk());
        if (!a.isOk()) continue;
        ASSERT_EQ(a->worker, b->worker) << "variant " << variant << " step " << step << " model " << model;
        ASSERT_EQ(a->overlap_blocks, b->overlap_blocks) << "variant " << variant << " step " << step;
        open.push_back(rid);
      } else if (!open.empty()) {
        const size_t k = rng() % open.size();
        if (op == 13) {
          both([&](KvRouter& r) { r.onPrefillCompleted(open[k]); });
        } else {
          both([&](KvRouter& r) { r.onRequestFinished(open[k]); });
          open[k] = open.back();
          open.pop_back();
        }
      }
    }
    const auto sp = pruned.stats(), sf = full.stats();
    EXPECT_EQ(sp.routed_per_worker, sf.routed_per_worker);
    EXPECT_EQ(sp.busy_skips, sf.busy_skips) << "variant " << variant;
    EXPECT_EQ(sp.index_entries, sf.index_entries);
    EXPECT_GT(sp.requests_routed, 1000u);
  }
}

// Fresh prompts among many idle workers: the winners are a whole bucket of workers outside every
// overlap group, drawn uniformly.
TEST(KvRouterPrunedTest, NonOverlappingTiesAreDrawnUniformly) {
  int64_t now = 0;
  KvRouterOptions o;
  o.seed = 3;
  o.prediction_ttl_ms = 1;  // each decision's predictions are gone by the next one
  o.now_us = [&now] { return now; };
  KvRouter r(o);
  for (WorkerId w = 1; w <= 100; ++w) r.addWorker(WorkerInfo{w, "m", "agg", 16, 1000});
  // Worker 1..10 hold the first block of every prompt but carry load: cost 3 + 50 > 4 + 0.
  std::vector<BlockHash> shared = {5};
  for (WorkerId w = 1; w <= 10; ++w) {
    r.onKvEvents(message(w, 0, kv::BlockStored{shared, std::nullopt, Tier::kDevice}));
    r.onLoad(kv::LoadMetrics{w, "agg", 1, 0, 1000, 50, 0, 0, 0, 0});
  }
  std::map<WorkerId, int> count;
  for (int i = 0; i < 9000; ++i) {
    const auto b = static_cast<BlockHash>(100 + 10 * i);
    const std::vector<BlockHash> hs = {5, b, b + 1, b + 2};
    const std::string id = "q" + std::to_string(i);
    now += 10'000;
    ++count[r.route(RouteRequest{id, "m", hs, 64})->worker];
    r.onRequestFinished(id);
  }
  EXPECT_EQ(count.size(), 90u);
  for (auto& [w, n] : count) {
    EXPECT_GT(w, 10u);
    EXPECT_GT(n, 50) << w;  // 100 expected each
    EXPECT_LT(n, 160) << w;
  }
}


// A prefix held by 200 idle workers: 200 tie at the deepest group (the draw goes through a bitset
// above 32 ties) and the pick is the exhaustive path's, draw for draw, and spread over all of them.
TEST(KvRouterPrunedTest, ManyTiedHoldersAreDrawnAsTheExhaustivePathDraws) {
  int64_t now = 0;
  KvRouterOptions o;
  o.seed = 5;
  o.prediction_ttl_ms = 1;
  o.now_us = [&now] { return now; };
  KvRouterOptions e = o;
  e.exhaustive = true;
  KvRouter pruned(o), full(e);
  const std::vector<BlockHash> shared = {5, 6};
  for (KvRouter* r : {&pruned, &full}) {
    for (WorkerId w = 1; w <= 300; ++w) r->addWorker(WorkerInfo{w, "m", "agg", 16, 1000});
    for (WorkerId w = 51; w <= 250; ++w) {
      r->onKvEvents(message(w, 0, kv::BlockStored{shared, std::nullopt, Tier::kDevice}));
    }
  }
  std::map<WorkerId, int> count;
  for (int i = 0; i < 4000; ++i) {
    const auto b = static_cast<BlockHash>(100 + 10 * i);
    const std::vector<BlockHash> hs = {5, 6, b, b + 1};
    const std::string id = "q" + std::to_string(i);
    now += 10'000;
    const auto a = pruned.route(RouteRequest{id, "m", hs, 64});
    const auto f = full.route(RouteRequest{id, "m", hs, 64});
    ASSERT_TRUE(a.isOk() && f.isOk());
    ASSERT_EQ(a->worker, f->worker) << i;
    ASSERT_EQ(a->overlap_blocks, 2);
    ++count[a->worker];
    pruned.onRequestFinished(id);
    full.onRequestFinished(id);
  }
  EXPECT_GE(count.size(), 195u);  // 20 expected each: all but a few are drawn
  for (auto& [w, n] : count) {
    EXPECT_GE(w, 51u);
    EXPECT_LE(w, 250u);
  }
}

}  // namespace
}  // namespace turbine::router
