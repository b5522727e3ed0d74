// PrefixIndex against a plain reference model (per worker, per tier, a set of hashes) on
// randomized event streams, plus predictions (TTL, cap, confirmation by events).
#include "kv/prefix_index.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace turbine::kv {
namespace {

struct Reference {
  std::map<WorkerSlot, std::array<std::set<BlockHash>, kNumTiers>> held;
  std::array<double, kNumTiers> weights = {1.0, 0.75, 0.5, 0.25};

  void apply(WorkerSlot w, const KvEvent& e) {
    if (const auto* s = std::get_if<BlockStored>(&e)) {
      held[w][static_cast<int>(s->tier)].insert(s->block_hashes.begin(), s->block_hashes.end());
    } else if (const auto* r = std::get_if<BlockRemoved>(&e)) {
      for (auto h : r->block_hashes) held[w][static_cast<int>(r->tier)].erase(h);
    } else {
      held.erase(w);
    }
  }
  size_t entries() const {
    size_t n = 0;
    for (const auto& [w, tiers] : held) {
      std::set<BlockHash> all;
      for (const auto& t : tiers) all.insert(t.begin(), t.end());
      n += all.size();
    }
    return n;
  }
  std::map<WorkerSlot, std::pair<int32_t, double>> overlaps(const std::vector<BlockHash>& q) const {
    std::map<WorkerSlot, std::pair<int32_t, double>> out;
    for (const auto& [w, tiers] : held) {
      int32_t run = 0;
      double weighted = 0;
      for (auto h : q) {
        double best = -1;
        for (int t = 0; t < kNumTiers; ++t)
          if (tiers[t].count(h)) best = std::max(best, weights[t]);
        if (best < 0) break;
        ++run;
        weighted += best;
      }
      if (run > 0) out[w] = {run, weighted};
    }
    return out;
  }
};

// A few "conversations": chains that share prefixes, like real prompts.
std::vector<std::vector<BlockHash>> makeChains(std::mt19937_64& rng, int n, int len) {
  std::vector<std::vector<BlockHash>> chains;
  for (int c = 0; c < n; ++c) {
    std::vector<BlockHash> chain;
    if (!chains.empty() && rng() % 2) {
      const auto& base = chains[rng() % chains.size()];
      chain.assign(base.begin(), base.begin() + static_cast<long>(rng() % base.size()));
    }
    while (static_cast<int>(chain.size()) < len) chain.push_back(rng() % 4 == 0 ? rng() % 64 : rng());
    chains.push_back(chain);
  }
  return chains;
}

// A random run of one of `chains`, and a tier (the device tier two times in three).
std::pair<std::vector<BlockHash>, Tier> randomPart(std::mt19937_64& rng,
                                                   const std::vector<std::vector<BlockHash>>& chains) {
  const auto& chain = chains[rng() % chains.size()];
  const size_t a = rng() % chain.size();
  const size_t b = a + 1 + rng() % (chain.size() - a);
  std::vector<BlockHash> part(chain.begin() + static_cast<long>(a), chain.begin() + static_cast<long>(b));
  return {std::move(part), static_cast<Tier>(rng() % 3 == 0 ? rng() % kNumTiers : 0)};
}

// Random events applied one by one (max_batch 1), or in batches of up to max_batch events of
// several workers through apply(span) (rounds of 64 blocks that span events, a clear in the
// middle, a hash stored and removed within one round).
void matchesReferenceOnRandomEventStreams(size_t max_batch) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    std::mt19937_64 rng(seed);
    PrefixIndexOptions opts;
    opts.initial_capacity = 16;  // force growth and many probe collisions
    PrefixIndex index(opts);
    Reference ref;
    std::vector<WorkerSlot> workers;
    for (int i = 0; i < 6; ++i) workers.push_back(index.internWorker(100 + i));
    const auto chains = makeChains(rng, 30, 12);
    std::vector<WorkerOverlap> got;
    std::vector<KvEvent> batch;
    std::vector<PrefixIndex::WorkerEvent> refs;
    for (int step = 0; step < 3000; ++step) {
      batch.clear();
      refs.clear();
      const size_t n = 1 + rng() % max_batch;
      batch.reserve(n);  // refs point into it
      for (size_t k = 0; k < n; ++k) {
        const WorkerSlot w = workers[rng() % workers.size()];
        const auto [part, tier] = randomPart(rng, chains);
        const auto r = rng() % 100;
        if (r < 55) batch.emplace_back(BlockStored{part, std::nullopt, tier});
        else if (r < 99) batch.emplace_back(BlockRemoved{part, tier});
        else batch.emplace_back(AllCleared{});
        refs.push_back({w, &batch.back()});
        ref.apply(w, batch.back());
      }
      if (max_batch == 1) {
        index.apply(refs[0].worker, *refs[0].event);
      } else {
        index.apply(refs);
      }
      if (step % 50 == 0) {
        ASSERT_EQ(index.numEntries(), ref.entries()) << "seed " << seed << " step " << step;
        for (const auto& q : chains) {
          index.findOverlaps(q, got);
          auto want = ref.overlaps(q);
          ASSERT_EQ(got.size(), want.size()) << "seed " << seed << " step " << step;
          for (const auto& o : got) {
            ASSERT_TRUE(want.count(o.worker));
            EXPECT_EQ(o.blocks, want[o.worker].first);
            EXPECT_DOUBLE_EQ(o.weighted, want[o.worker].second);
          }
        }
        for (const auto& [wk, tiers] : ref.held) {
          for (int t = 0; t < kNumTiers; ++t)
            for (auto h : tiers[t]) ASSERT_TRUE(index.mask(h, wk) & (1u << t));
        }
      }
    }
  }
}

TEST(PrefixIndexTest, MatchesReferenceOnRandomEventStreams) { matchesReferenceOnRandomEventStreams(1); }

TEST(PrefixIndexTest, BatchesOfEventsMatchReference) { matchesReferenceOnRandomEventStreams(16); }

TEST(PrefixIndexTest, OverlapIsLeadingRunOnly) {
  PrefixIndex index;
  const WorkerSlot a = index.internWorker(1);
  const WorkerSlot b = index.internWorker(2);
  index.addBlocks(a, std::vector<BlockHash>{10, 11, 12}, Tier::kDevice);
  index.addBlocks(b, std::vector<BlockHash>{10, 12}, Tier::kHost);  // hole at 11
  std::vector<WorkerOverlap> out;
  index.findOverlaps(std::vector<BlockHash>{10, 11, 12, 13}, out);
  std::map<WorkerSlot, WorkerOverlap> by;
  for (auto& o : out) by[o.worker] = o;
  EXPECT_EQ(by.at(a).blocks, 3);
  EXPECT_DOUBLE_EQ(by.at(a).weighted, 3.0);
  EXPECT_EQ(by.at(b).blocks, 1);
  EXPECT_DOUBLE_EQ(by.at(b).weighted, 0.75);
  index.findOverlaps(std::vector<BlockHash>{11, 12}, out);  // b lacks 11: only a matches
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].worker, a);
  EXPECT_EQ(out[0].blocks, 2);
  index.findOverlaps(std::vector<BlockHash>{99, 10}, out);
  EXPECT_TRUE(out.empty());
}

TEST(PrefixIndexTest, PredictionsExpireByTtlAndCapAndYieldToEvents) {
  PrefixIndexOptions opts;
  opts.prediction_ttl_us = 1000;
  opts.prediction_cap = 4;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(7);
  index.predict(w, std::vector<BlockHash>{1, 2, 3}, 0);
  EXPECT_EQ(index.numPredictions(), 3u);
  EXPECT_EQ(index.mask(2, w), PrefixIndex::kPredictedBit);
  // An event confirms block 1: the tier bit replaces the prediction.
  index.addBlocks(w, std::vector<BlockHash>{1}, Tier::kDevice);
  EXPECT_EQ(index.mask(1, w), 1u);
  EXPECT_EQ(index.numPredictions(), 2u);
  // Touching 2 again at t=900 keeps it alive past t=1000; 3 expires.
  index.predict(w, std::vector<BlockHash>{2}, 900);
  index.expirePredictions(1500);
  EXPECT_EQ(index.mask(3, w), 0u);
  EXPECT_EQ(index.mask(2, w), PrefixIndex::kPredictedBit);
  index.expirePredictions(2000);
  EXPECT_EQ(index.mask(2, w), 0u);
  EXPECT_EQ(index.mask(1, w), 1u);  // real entries never expire
  // Cap: 6 fresh predictions, only the 4 newest survive.
  index.predict(w, std::vector<BlockHash>{20, 21, 22, 23, 24, 25}, 3000);
  index.expirePredictions(3000);
  EXPECT_EQ(index.numPredictions(), 4u);
  EXPECT_EQ(index.mask(20, w), 0u);
  EXPECT_EQ(index.mask(25, w), PrefixIndex::kPredictedBit);
  EXPECT_EQ(index.numEntries(), 5u);
}

TEST(PrefixIndexTest, ClearAndReleaseWorker) {
  PrefixIndexOptions opts;
  opts.initial_capacity = 16;
  PrefixIndex index(opts);
  const WorkerSlot a = index.internWorker(1);
  const WorkerSlot b = index.internWorker(2);
  std::vector<BlockHash> hs;
  for (BlockHash h = 0; h < 500; ++h) hs.push_back(h * 7919);
  index.addBlocks(a, hs, Tier::kDevice);
  index.addBlocks(b, std::span(hs).first(100), Tier::kDisk);
  EXPECT_EQ(index.numHashes(), 500u);
  index.releaseWorker(1);
  EXPECT_EQ(index.numHashes(), 100u);
  EXPECT_EQ(index.numEntries(), 100u);
  EXPECT_EQ(index.blocksOf(b), 100u);
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(index.mask(hs[i], b), 4u);
  EXPECT_FALSE(index.findWorker(1).has_value());
  EXPECT_EQ(index.internWorker(3), a);  // the slot is recycled
  EXPECT_EQ(index.blocksOf(a), 0u);
  // Worker 1 again: a new slot (a is worker 3's now), and each id keeps its slot.
  const WorkerSlot again = index.internWorker(1);
  EXPECT_NE(again, a);
  EXPECT_EQ(index.workerId(again), 1u);
  EXPECT_EQ(index.internWorker(3), a);
  EXPECT_EQ(index.internWorker(1), again);
  EXPECT_EQ(index.findWorker(3), a);
}

// With refresh_predictions false (KV events): a decision's new predictions live TTL after that
// decision; a later decision predicting them again does not extend them; events replace them and
// their record's expiry then leaves the real entry alone; the cap drops the oldest records.
TEST(PrefixIndexTest, PerDecisionPredictionsExpireWithTheirDecision) {
  PrefixIndexOptions opts;
  opts.prediction_ttl_us = 1000;
  opts.prediction_cap = 6;
  opts.refresh_predictions = false;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(7);
  const WorkerSlot v = index.internWorker(8);
  index.predict(w, std::vector<BlockHash>{1, 2, 3}, 0);
  EXPECT_EQ(index.numPredictions(), 3u);
  index.addBlocks(w, std::vector<BlockHash>{1}, Tier::kDevice);  // confirmed by an event
  EXPECT_EQ(index.mask(1, w), 1u);
  index.predict(w, std::vector<BlockHash>{2, 4}, 900);  // 2 again (not extended), 4 new
  index.predict(v, std::vector<BlockHash>{1}, 900);     // another worker's
  EXPECT_EQ(index.numPredictions(), 4u);                // 2, 3, 4 on w; 1 on v
  index.expirePredictions(1000);  // nothing older than the TTL yet
  EXPECT_EQ(index.numPredictions(), 4u);
  index.expirePredictions(1001);  // the first decision's record: 2 and 3 go, 1 stays real
  EXPECT_EQ(index.mask(1, w), 1u);
  EXPECT_EQ(index.mask(2, w), 0u);
  EXPECT_EQ(index.mask(3, w), 0u);
  EXPECT_EQ(index.mask(4, w), PrefixIndex::kPredictedBit);
  EXPECT_EQ(index.mask(1, v), PrefixIndex::kPredictedBit);
  EXPECT_EQ(index.numPredictions(), 2u);
  EXPECT_EQ(index.numEntries(), 3u);
  index.expirePredictions(1901);
  EXPECT_EQ(index.numPredictions(), 0u);
  EXPECT_EQ(index.numEntries(), 1u);
  EXPECT_EQ(index.numHashes(), 1u);  // predicted-only hashes left the table
  // Cap 6: 8 fresh predictions in 4 decisions, the oldest decision goes.
  for (BlockHash h = 10; h < 18; h += 2) index.predict(w, std::vector<BlockHash>{h, h + 1}, 2000 + h);
  EXPECT_EQ(index.numPredictions(), 8u);
  index.expirePredictions(2100);
  EXPECT_EQ(index.numPredictions(), 6u);
  EXPECT_EQ(index.mask(10, w), 0u);
  EXPECT_EQ(index.mask(11, w), 0u);
  EXPECT_EQ(index.mask(12, w), PrefixIndex::kPredictedBit);
  // A worker that leaves: its records no longer name its (recycled) slot.
  index.releaseWorker(7);
  const WorkerSlot u = index.internWorker(9);
  ASSERT_EQ(u, w);
  index.predict(u, std::vector<BlockHash>{14}, 2200);
  index.expirePredictions(3100);  // w's old records are past the TTL; u's is not
  EXPECT_EQ(index.mask(14, u), PrefixIndex::kPredictedBit);
  index.expirePredictions(3201);
  EXPECT_EQ(index.numPredictions(), 0u);
  // The log holds at most `cap` hashes, confirmed ones included: the oldest record goes first.
  index.predict(u, std::vector<BlockHash>{20, 21, 22, 23}, 4000);
  index.addBlocks(u, std::vector<BlockHash>{20, 21, 22}, Tier::kDevice);
  index.predict(u, std::vector<BlockHash>{24, 25, 26, 27}, 4001);
  EXPECT_EQ(index.numPredictions(), 5u);  // within the cap, but 8 hashes logged
  index.expirePredictions(4002);          // the first record goes: 23's prediction with it
  EXPECT_EQ(index.numPredictions(), 4u);
  EXPECT_EQ(index.mask(23, u), 0u);
  EXPECT_EQ(index.mask(20, u), 1u);
}

// The log's rings are fixed (65,536 hashes, 16,384 records at least): a decision that finds them
// full drops the oldest records first, whatever their age.
TEST(PrefixIndexTest, AFullPredictionLogDropsItsOldestRecords) {
  PrefixIndexOptions opts;
  opts.prediction_ttl_us = int64_t{1} << 40;
  opts.prediction_cap = 1000;  // (expirePredictions is not called: only the rings' size acts)
  opts.refresh_predictions = false;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(1);
  for (BlockHash h = 1; h <= 20000; ++h) index.predict(w, std::vector<BlockHash>{h}, static_cast<int64_t>(h));
  EXPECT_EQ(index.numPredictions(), 16384u);
  EXPECT_EQ(index.mask(1, w), 0u);
  EXPECT_EQ(index.mask(20000 - 16384, w), 0u);
  EXPECT_EQ(index.mask(20000 - 16383, w), PrefixIndex::kPredictedBit);
  EXPECT_EQ(index.mask(20000, w), PrefixIndex::kPredictedBit);
}

// The table at its growth load (3/4 of the slots; each hash has two candidate lines of 4 slots),
// churned: inserts into two full lines must move residents to their other line, and no hash may
// be lost, duplicated or found where it is not.
TEST(PrefixIndexTest, TableAtItsGrowthLoadKeepsEveryHash) {
  PrefixIndexOptions opts;
  opts.initial_capacity = 1024;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(1);
  std::mt19937_64 rng(7);
  std::vector<BlockHash> live;
  std::set<BlockHash> present;
  while (live.size() < 767) {  // 767 + 1 = 768 slots: the last insert before the table doubles
    const BlockHash h = rng() % 3 == 0 ? rng() % 5000 : rng();
    if (!present.insert(h).second) continue;
    live.push_back(h);
    index.addBlocks(w, std::vector<BlockHash>{h}, Tier::kDevice);
  }
  for (int step = 0; step < 20000; ++step) {
    const size_t i = rng() % live.size();
    index.removeBlocks(w, std::vector<BlockHash>{live[i]}, Tier::kDevice);
    present.erase(live[i]);
    BlockHash h;
    do h = rng() % 3 == 0 ? rng() % 5000 : rng(); while (present.count(h));
    present.insert(h);
    live[i] = h;
    index.addBlocks(w, std::vector<BlockHash>{h}, Tier::kDevice);
    if (step % 1000 == 0 || step == 19999) {
      ASSERT_EQ(index.numHashes(), 767u) << "step " << step;
      ASSERT_EQ(index.numEntries(), 767u) << "step " << step;
      for (BlockHash x : live) ASSERT_EQ(index.mask(x, w), 1u) << "step " << step;
      for (BlockHash x = 0; x < 5000; ++x) ASSERT_EQ(index.mask(x, w), present.count(x) ? 1u : 0u) << x;
    }
  }
  EXPECT_EQ(index.tableSlots(), 1024u);  // the moves found room: the table never doubled
}

// Filled to 3/4 of 2^20 slots, the table must not double early. A hash's two lines share a 4 KiB
// page, so the fullest of 4,096 pages fills first: without the random walk this table doubled at
// load 0.725 (searches of one and two moves found no room), with it at 0.75.
TEST(PrefixIndexTest, ALargeTableFillsToItsGrowthLoad) {
  PrefixIndexOptions opts;
  opts.initial_capacity = size_t{1} << 20;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(1);
  std::mt19937_64 rng(1);
  std::vector<BlockHash> hs(786431);  // + 1 = 786,432 = 3/4 of the slots
  for (auto& h : hs) h = rng();
  index.addBlocks(w, hs, Tier::kDevice);
  EXPECT_EQ(index.numHashes(), hs.size());
  EXPECT_EQ(index.tableSlots(), size_t{1} << 20);
  EXPECT_FALSE(index.growing());
  for (BlockHash h : hs) ASSERT_EQ(index.mask(h, w), 1u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(index.mask(rng(), w), 0u);
}

// Nine hashes whose two candidate lines are the same two lines of a 16-slot table: the ninth
// finds no room however residents move (the random walk fails and must put every moved slot
// back), so the table doubles early, and no hash may be lost. White-box: the hashes are chosen
// with the table's own formula (first line from the top bits of h * golden ratio, the second
// line's offset from bits 20..25), and the early doubling checks that they still collide.
TEST(PrefixIndexTest, AFailedRandomWalkPutsEverySlotBack) {
  PrefixIndexOptions opts;
  opts.initial_capacity = 16;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(1);
  std::vector<BlockHash> hs;
  for (BlockHash h = 1; hs.size() < 9; ++h) {
    const uint64_t g = h * 0x9E3779B97F4A7C15ull;
    const bool first_line_0 = (g >> 60) < 4;      // slots 0..3
    const bool second_line_1 = ((g >> 20) & 3) == 1 || ((g >> 20) & 3) == 0;  // offset 1 line
    if (first_line_0 && second_line_1) hs.push_back(h);
  }
  for (size_t i = 0; i < hs.size(); ++i) {
    index.addBlocks(w, std::span(&hs[i], 1), Tier::kDevice);
    for (size_t j = 0; j <= i; ++j) ASSERT_EQ(index.mask(hs[j], w), 1u) << i << " " << j;
    EXPECT_EQ(index.numHashes(), i + 1);
  }
  EXPECT_EQ(index.tableSlots(), 32u);  // doubled at 9 hashes, below 3/4 of 16
}

// Hashes that all fall in page 0 of a 65,536-slot table (256 pages of 256 slots) and in page 0
// of the doubled one: the page fills and the table starts doubling; the first insert moves the
// page into its new page 0, which fills a few inserts later while the other 255 pages are still
// to move, and the table must then be rebuilt at once with the entries of both tables.
// White-box: the hashes are chosen through the inverse of the table's multiplier, so that
// h * golden ratio has the top bits wanted.
TEST(PrefixIndexTest, APageThatFillsWhileTheTableDoublesRebuildsIt) {
  PrefixIndexOptions opts;
  opts.initial_capacity = size_t{1} << 16;
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(1);
  const uint64_t golden = 0x9E3779B97F4A7C15ull;
  uint64_t inverse = golden;  // Newton's iteration for the inverse modulo 2^64
  for (int i = 0; i < 6; ++i) inverse *= 2 - golden * inverse;
  ASSERT_EQ(golden * inverse, 1u);
  std::mt19937_64 rng(5);
  std::vector<BlockHash> hs(2000);  // first, hashes in every page
  for (auto& h : hs) h = rng();
  index.addBlocks(w, hs, Tier::kDevice);
  for (int i = 0; i < 600; ++i) {
    const uint64_t mixed = rng() >> 9;  // top 9 bits 0: page 0 of 256, then of 512
    hs.push_back(mixed * inverse);
    index.addBlocks(w, std::span(&hs.back(), 1), Tier::kDevice);
  }
  EXPECT_EQ(index.numHashes(), hs.size());
  EXPECT_EQ(index.numEntries(), hs.size());
  for (BlockHash h : hs) ASSERT_EQ(index.mask(h, w), 1u);
  // 600 hashes in the first 512th of the pages: they need 3 or more pages of 256 slots, so the
  // table went from 2^16 slots to at least 2^19.
  EXPECT_GE(index.tableSlots(), size_t{1} << 19);
}

// Once the table has doubled, the next table is mapped (and pre-faulted by a helper thread) at
// 65% load, and the next doubling starts on it; a table sized at construction gets no spare.
TEST(PrefixIndexTest, AGrownTableMapsItsNextTableAhead) {
  auto fill = [](PrefixIndex& index, std::mt19937_64& rng, std::vector<BlockHash>& hs, size_t to) {
    std::vector<BlockHash> part;
    while (hs.size() < to) {
      part.assign(1, rng());
      hs.push_back(part[0]);
      index.addBlocks(0, part, Tier::kDevice);
    }
  };
  constexpr size_t kSlots = size_t{1} << 16;  // the doubled table's next one is 2 MiB
  PrefixIndexOptions opts;
  opts.initial_capacity = kSlots / 2;
  PrefixIndex index(opts);
  ASSERT_EQ(index.internWorker(1), 0u);
  std::mt19937_64 rng(9);
  std::vector<BlockHash> hs;
  fill(index, rng, hs, kSlots / 2 * 3 / 4 + 1);  // doubles to kSlots
  fill(index, rng, hs, kSlots * 13 / 20 - 10);
  EXPECT_EQ(index.tableSlots(), kSlots);
  const size_t before = index.memoryBytes();
  fill(index, rng, hs, kSlots * 13 / 20 + 10);  // past 65%: the spare is mapped
  EXPECT_GE(index.memoryBytes(), before + 2 * kSlots * 16);
  fill(index, rng, hs, kSlots * 3 / 4 + 1);  // the doubling starts on it
  EXPECT_EQ(index.tableSlots(), 2 * kSlots);
  EXPECT_TRUE(index.growing());
  for (BlockHash h : hs) ASSERT_EQ(index.mask(h, 0), 1u);

  PrefixIndexOptions sized;
  sized.initial_capacity = kSlots;
  PrefixIndex fixed(sized);
  ASSERT_EQ(fixed.internWorker(1), 0u);
  std::vector<BlockHash> hs2;
  fill(fixed, rng, hs2, kSlots * 13 / 20 - 10);
  const size_t fixed_before = fixed.memoryBytes();
  fill(fixed, rng, hs2, kSlots * 3 / 4 - 1);
  EXPECT_LT(fixed.memoryBytes(), fixed_before + kSlots * 16);  // no spare
}

// Overlap queries alone end a doubling (a page moves every 4 queries), and see every hash
// wherever it is meanwhile.
TEST(PrefixIndexTest, QueriesAloneEndADoubling) {
  PrefixIndexOptions opts;
  opts.initial_capacity = size_t{1} << 16;  // 256 pages
  PrefixIndex index(opts);
  const WorkerSlot w = index.internWorker(1);
  std::mt19937_64 rng(11);
  std::vector<BlockHash> hs((size_t{3} << 14) + 1);  // one past 3/4: the last insert starts it
  for (auto& h : hs) h = rng();
  index.addBlocks(w, std::span(hs).first(hs.size() - 1), Tier::kDevice);
  index.addBlocks(w, std::span(hs).last(1), Tier::kDevice);
  ASSERT_TRUE(index.growing());
  std::vector<WorkerOverlap> got;
  size_t queries = 0;
  for (; index.growing() && queries < 4096; ++queries) {
    const BlockHash h = hs[rng() % hs.size()];
    index.findOverlaps(std::vector<BlockHash>{h}, got);
    ASSERT_EQ(got.size(), 1u) << queries;
    EXPECT_EQ(got[0].blocks, 1);
  }
  EXPECT_FALSE(index.growing());
  EXPECT_LE(queries, 4u * 256);
  for (BlockHash h : hs) ASSERT_EQ(index.mask(h, w), 1u);
}

// On a table of 2^16 slots or more, a released worker is swept in slices (kSweepSlots per event
// round or query): queries stop reporting it at once, popular (dense), shared (list) and own
// blocks lose it within table / kSweepSlots queries, its predictions go with them, a second
// release during a sweep is swept too, and a doubling finishes any sweep before it starts.
// An index of 2^16 slots (large enough that a leaving worker is swept) with kWorkers workers
// (ids 1000 + i): `popular` held by every worker (dense holder sets), `shared` by workers 0-4 on
// the host tier (lists), 100 blocks of each worker's own, and 40 predictions of worker 2.
class SweptIndexTest : public ::testing::Test {
 protected:
  static constexpr int kWorkers = 200;
  static PrefixIndexOptions options() {
    PrefixIndexOptions opts;
    opts.initial_capacity = size_t{1} << 16;
    opts.refresh_predictions = false;
    return opts;
  }
  void fill(uint64_t seed) {
    rng.seed(seed);
    for (int i = 0; i < kWorkers; ++i) ws.push_back(index.internWorker(1000 + i));
    popular = randomChain(8);
    shared = randomChain(8);
    own.resize(kWorkers);
    for (int i = 0; i < kWorkers; ++i) {
      index.addBlocks(ws[i], popular, Tier::kDevice);
      if (i < 5) index.addBlocks(ws[i], shared, Tier::kHost);
      own[i] = randomChain(100);
      index.addBlocks(ws[i], own[i], Tier::kDevice);
    }
    index.predict(ws[2], randomChain(40), 0);
  }
  std::vector<BlockHash> randomChain(size_t n) {
    std::vector<BlockHash> c(n);
    for (auto& h : c) h = rng();
    return c;
  }
  PrefixIndex index{options()};
  std::mt19937_64 rng;
  std::vector<WorkerSlot> ws;
  std::vector<BlockHash> popular, shared;
  std::vector<std::vector<BlockHash>> own;
};

TEST_F(SweptIndexTest, AReleasedWorkerIsSweptInSlices) {
  fill(13);
  ASSERT_GT(index.numDenseHashes(), 0u);
  ASSERT_EQ(index.numPredictions(), 40u);
  // Held by workers 3 and 4 alone (a list of two): when both are swept at once, clearing the
  // first leaves the second inline, to be cleared too.
  const auto pair = randomChain(64);
  index.addBlocks(ws[3], pair, Tier::kDevice);
  index.addBlocks(ws[4], pair, Tier::kDevice);
  const size_t entries = index.numEntries();
  std::vector<WorkerOverlap> got;
  auto sweepByQueries = [&](size_t most) {
    size_t q = 0;
    for (; index.sweepingWorkers() > 0 && q < most; ++q) index.findOverlaps(popular, got);
    return q;
  };
  const size_t slices = index.tableSlots() / PrefixIndex::kSweepSlots;

  index.releaseWorker(1002);  // ws[2]: in the popular, shared and own blocks, and predicted
  EXPECT_EQ(index.sweepingWorkers(), 1u);
  index.findOverlaps(popular, got);
  EXPECT_EQ(got.size(), kWorkers - 1u);
  for (const WorkerOverlap& o : got) EXPECT_NE(o.worker, ws[2]);
  index.findOverlaps(shared, got);
  EXPECT_EQ(got.size(), 4u);
  for (const WorkerOverlap& o : got) EXPECT_NE(o.worker, ws[2]);
  index.findOverlaps(own[2], got);
  EXPECT_TRUE(got.empty());
  OverlapGroups groups;
  index.findOverlapGroups(popular, groups);
  EXPECT_EQ(groups.matched, kWorkers - 1u);
  EXPECT_LE(sweepByQueries(1000), slices + 1);
  EXPECT_EQ(index.sweepingWorkers(), 0u);
  EXPECT_EQ(index.numEntries(), entries - 8 - 8 - 100 - 40);  // the pair is untouched
  EXPECT_EQ(index.numPredictions(), 0u);
  for (BlockHash h : own[2]) EXPECT_EQ(index.mask(h, ws[2]), 0u);
  for (BlockHash h : popular) EXPECT_EQ(index.mask(h, ws[2]), 0u);
  for (BlockHash h : shared) EXPECT_EQ(index.mask(h, ws[3]), 2u);
  EXPECT_EQ(index.internWorker(2002), ws[2]);  // recycled once swept

  // Two releases, the second half way through the first's sweep, with inserts meanwhile (whose
  // moves relocate residents within their page: none may slip behind the sweep).
  index.releaseWorker(1003);
  sweepByQueries(slices / 2);
  index.releaseWorker(1004);
  EXPECT_EQ(index.sweepingWorkers(), 2u);
  size_t added = 0;
  for (size_t q = 0; index.sweepingWorkers() > 0 && q < 1000; ++q) {
    index.addBlocks(ws[7], randomChain(16), Tier::kDevice);
    added += 16;
  }
  EXPECT_EQ(index.sweepingWorkers(), 0u);
  EXPECT_EQ(index.numEntries(), entries - 3 * (8 + 8 + 100) - 40 - 2 * 64 + added);
  for (BlockHash h : pair) EXPECT_EQ(index.mask(h, ws[4]), 0u);
  for (int i : {3, 4}) {
    for (BlockHash h : own[i]) EXPECT_EQ(index.mask(h, ws[i]), 0u);
    for (BlockHash h : shared) EXPECT_EQ(index.mask(h, ws[i]), 0u);
  }
  index.findOverlaps(shared, got);
  EXPECT_EQ(got.size(), 2u);  // workers 0 and 1

  // The table filled to its growth load, a release, then the insert that starts a doubling: the
  // sweep is finished before the table changes.
  const size_t slots = index.tableSlots();
  index.addBlocks(ws[6], randomChain(slots * 3 / 4 - index.numHashes()), Tier::kDevice);
  ASSERT_EQ(index.tableSlots(), slots);
  index.releaseWorker(1005);
  EXPECT_EQ(index.sweepingWorkers(), 1u);
  index.addBlocks(ws[6], randomChain(32), Tier::kDevice);  // one round: a slice, then the inserts
  EXPECT_EQ(index.tableSlots(), 2 * slots);
  EXPECT_TRUE(index.growing());
  EXPECT_EQ(index.sweepingWorkers(), 0u);
  for (BlockHash h : own[5]) EXPECT_EQ(index.mask(h, ws[5]), 0u);
  EXPECT_EQ(index.mask(popular[0], ws[5]), 0u);
}

// Approximate mode (refresh_predictions): a released worker's predictions are not searched for
// in the PredictionLru (a scan of its table); the sweep clears their bits, the keys age out by
// the TTL, and the slot is recycled only after, so their expiry cannot touch the slot's next
// worker.
TEST(PrefixIndexTest, AReleasedWorkersPredictionsAgeOutBeforeItsSlotIsReused) {
  PrefixIndexOptions opts;
  opts.initial_capacity = size_t{1} << 16;
  opts.refresh_predictions = true;
  opts.prediction_ttl_us = 1000;
  PrefixIndex index(opts);
  const WorkerSlot a = index.internWorker(1), b = index.internWorker(2);
  std::vector<BlockHash> ha(100), hb(100), own(50);
  std::mt19937_64 rng(5);
  for (auto* v : {&ha, &hb, &own}) {
    for (auto& h : *v) h = rng();
  }
  index.predict(a, ha, 0);
  index.addBlocks(a, own, Tier::kDevice);
  index.predict(b, hb, 900);
  index.predict(b, std::span(ha).first(10), 900);  // shared with a's
  ASSERT_EQ(index.numPredictions(), 210u);
  index.releaseWorker(1);
  std::vector<WorkerOverlap> got;
  for (size_t q = 0; index.sweepingWorkers() > 0 && q < 1000; ++q) index.findOverlaps(hb, got);
  EXPECT_EQ(index.sweepingWorkers(), 0u);
  EXPECT_EQ(index.agingWorkers(), 1u);
  EXPECT_EQ(index.numPredictions(), 110u);
  for (BlockHash h : ha) EXPECT_EQ(index.mask(h, a), 0u);
  for (BlockHash h : own) EXPECT_EQ(index.mask(h, a), 0u);
  const WorkerSlot c = index.internWorker(3);
  EXPECT_NE(c, a);  // a's keys are still live in the LRU
  index.expirePredictions(500);
  EXPECT_EQ(index.agingWorkers(), 1u);
  index.expirePredictions(1500);  // a's keys (touched at 0) expire; b's (900) stay
  EXPECT_EQ(index.agingWorkers(), 0u);
  EXPECT_EQ(index.internWorker(4), a);  // recycled now
  EXPECT_EQ(index.numPredictions(), 110u);
  for (BlockHash h : hb) EXPECT_EQ(index.mask(h, b), PrefixIndex::kPredictedBit);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(index.mask(ha[i], b), PrefixIndex::kPredictedBit);
  // The slot's new worker starts empty and predicts as any other.
  for (BlockHash h : ha) EXPECT_EQ(index.mask(h, a), 0u);
  index.predict(a, std::span(ha).first(5), 1600);
  index.findOverlaps(ha, got);
  ASSERT_EQ(got.size(), 2u);
  for (const WorkerOverlap& o : got) EXPECT_EQ(o.blocks, o.worker == a ? 5 : 10);
  index.expirePredictions(2700);
  EXPECT_EQ(index.numPredictions(), 0u);
}

// AllCleared through renewWorker on a table large enough to sweep: the worker goes on under a
// fresh slot at once while its old slot's entries (dense, list, own blocks, predictions) are
// swept a slice per call; what it stores after the clear, on the same hashes too, survives the
// sweep. Beyond kMaxSweeps running sweeps, and on a small table, the table is scanned instead.
TEST_F(SweptIndexTest, ARenewedWorkerGoesOnUnderAFreshSlot) {
  fill(17);
  ASSERT_GT(index.numDenseHashes(), 0u);
  const size_t entries = index.numEntries();
  std::vector<WorkerOverlap> got;

  const WorkerSlot n2 = index.renewWorker(1002);
  EXPECT_NE(n2, ws[2]);
  EXPECT_EQ(index.findWorker(1002), n2);
  EXPECT_EQ(index.workerId(n2), 1002u);
  EXPECT_EQ(index.sweepingWorkers(), 1u);
  index.findOverlaps(shared, got);
  EXPECT_EQ(got.size(), 4u);
  for (const WorkerOverlap& o : got) EXPECT_TRUE(o.worker != ws[2] && o.worker != n2);
  index.findOverlaps(own[2], got);
  EXPECT_TRUE(got.empty());
  // The worker stores again, partly the hashes its old slot still holds.
  const std::vector<BlockHash> again(own[2].begin(), own[2].begin() + 50);
  index.addBlocks(n2, again, Tier::kDevice);
  index.addBlocks(n2, std::span(popular).first(4), Tier::kDevice);
  index.findOverlaps(own[2], got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].worker, n2);
  EXPECT_EQ(got[0].blocks, 50);
  OverlapTable table;
  index.findOverlaps(popular, table);
  EXPECT_EQ(table.matched, size_t{kWorkers});  // 199 others, and n2 with a run of 4
  EXPECT_EQ(table.blocksOf(n2), 4);
  EXPECT_FALSE(table.has(ws[2]));
  for (size_t q = 0; index.sweepingWorkers() > 0 && q < 1000; ++q) index.findOverlaps(shared, got);
  EXPECT_EQ(index.sweepingWorkers(), 0u);
  EXPECT_EQ(index.numPredictions(), 0u);
  EXPECT_EQ(index.numEntries(), entries - 8 - 8 - 100 - 40 + 50 + 4);
  for (size_t i = 0; i < own[2].size(); ++i) {
    EXPECT_EQ(index.mask(own[2][i], n2), i < 50 ? 1u : 0u) << i;
    EXPECT_EQ(index.mask(own[2][i], ws[2]), 0u) << i;
  }
  for (size_t i = 0; i < popular.size(); ++i) EXPECT_EQ(index.mask(popular[i], n2), i < 4 ? 1u : 0u);
  EXPECT_EQ(index.blocksOf(n2), 54u);
  EXPECT_EQ(index.internWorker(5000), ws[2]);  // the old slot, recycled once swept

  // kMaxSweeps renewals at once; the next one scans and keeps its slot.
  for (size_t i = 0; i < PrefixIndex::kMaxSweeps; ++i) EXPECT_NE(index.renewWorker(1010 + i), ws[10 + i]);
  EXPECT_EQ(index.sweepingWorkers(), PrefixIndex::kMaxSweeps);
  const int last = 10 + static_cast<int>(PrefixIndex::kMaxSweeps);
  EXPECT_EQ(index.renewWorker(1000 + last), ws[last]);
  for (BlockHash h : own[last]) EXPECT_EQ(index.mask(h, ws[last]), 0u);
  EXPECT_EQ(index.mask(popular[0], ws[last]), 0u);
  EXPECT_EQ(index.sweepingWorkers(), PrefixIndex::kMaxSweeps);
  // A worker the index has not seen is interned.
  const WorkerSlot fresh = index.renewWorker(7777);
  EXPECT_EQ(index.findWorker(7777), fresh);

  // A small table clears at once under the same slot.
  PrefixIndex small;
  const WorkerSlot a = small.internWorker(1);
  small.addBlocks(a, own[0], Tier::kDevice);
  EXPECT_EQ(small.renewWorker(1), a);
  EXPECT_EQ(small.numEntries(), 0u);
  EXPECT_EQ(small.sweepingWorkers(), 0u);
}

// Random events of six workers on a table large enough to sweep, each AllCleared through
// renewWorker (several sweeps overlapping, now and then kMaxSweeps of them), against the
// reference by worker id: no overlap may show a cleared worker's old entries or lose one it
// stored after the clear.
TEST(PrefixIndexTest, RenewedWorkersMatchReferenceOnRandomEventStreams) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::mt19937_64 rng(seed);
    PrefixIndexOptions opts;
    opts.initial_capacity = size_t{1} << 16;
    opts.refresh_predictions = false;
    PrefixIndex index(opts);
    Reference ref;  // keyed by worker number 0-5
    for (WorkerId k = 0; k < 6; ++k) index.internWorker(100 + k);
    const auto chains = makeChains(rng, 30, 12);
    std::vector<WorkerOverlap> got;
    size_t renewed = 0, checked_entries = 0;
    for (int step = 0; step < 4000; ++step) {
      const WorkerId k = rng() % 6;
      const WorkerSlot w = *index.findWorker(100 + k);
      const auto [part, tier] = randomPart(rng, chains);
      const auto r = rng() % 100;
      KvEvent e = AllCleared{};
      if (r < 55) e = BlockStored{part, std::nullopt, tier};
      else if (r < 95) e = BlockRemoved{part, tier};
      if (r < 95) {
        index.apply(w, e);
      } else {
        renewed += index.renewWorker(100 + k) != w;
      }
      ref.apply(static_cast<WorkerSlot>(k), e);
      if (index.sweepingWorkers() == 0 && step % 5 == 0) {
        ASSERT_EQ(index.numEntries(), ref.entries()) << "seed " << seed << " step " << step;
        ++checked_entries;
      }
      if (step % 25 != 0) continue;
      for (const auto& q : chains) {
        index.findOverlaps(q, got);
        auto want = ref.overlaps(q);
        ASSERT_EQ(got.size(), want.size()) << "seed " << seed << " step " << step;
        for (const auto& o : got) {
          const auto id = static_cast<WorkerSlot>(index.workerId(o.worker) - 100);
          ASSERT_EQ(index.findWorker(100 + id), o.worker) << "an old slot reported";
          ASSERT_TRUE(want.count(id));
          EXPECT_EQ(o.blocks, want[id].first);
          EXPECT_DOUBLE_EQ(o.weighted, want[id].second);
        }
      }
      for (const auto& [id, tiers] : ref.held) {
        const WorkerSlot now = *index.findWorker(100 + id);
        for (int t = 0; t < kNumTiers; ++t)
          for (auto h : tiers[t]) ASSERT_TRUE(index.mask(h, now) & (1u << t));
      }
    }
    for (size_t q = 0; index.sweepingWorkers() > 0 && q < 10000; ++q) index.findOverlaps(chains[0], got);
    EXPECT_EQ(index.numEntries(), ref.entries());
    EXPECT_GT(renewed, 100u);        // clears under a fresh slot
    EXPECT_GT(checked_entries, 5u);  // and moments with no sweep running
  }
}

// An empty slot's hash field is 0: hash 0 must still be found only where it is stored.
TEST(PrefixIndexTest, HashZeroIsAHashLikeAnyOther) {
  PrefixIndex index;
  const WorkerSlot a = index.internWorker(1);
  const WorkerSlot b = index.internWorker(2);
  std::vector<WorkerOverlap> out;
  EXPECT_EQ(index.mask(0, a), 0u);
  index.findOverlaps(std::vector<BlockHash>{0, 1}, out);
  EXPECT_TRUE(out.empty());
  index.addBlocks(b, std::vector<BlockHash>{0, 1}, Tier::kDevice);
  EXPECT_EQ(index.mask(0, b), 1u);
  EXPECT_EQ(index.mask(0, a), 0u);
  index.findOverlaps(std::vector<BlockHash>{0, 1}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].worker, b);
  EXPECT_EQ(out[0].blocks, 2);
  index.removeBlocks(b, std::vector<BlockHash>{0}, Tier::kDevice);
  EXPECT_EQ(index.mask(0, b), 0u);
  EXPECT_EQ(index.numHashes(), 1u);
  index.findOverlaps(std::vector<BlockHash>{0, 1}, out);
  EXPECT_TRUE(out.empty());
  index.predict(a, std::vector<BlockHash>{0}, 0);
  EXPECT_EQ(index.mask(0, a), PrefixIndex::kPredictedBit);
  EXPECT_EQ(index.numHashes(), 2u);
}


// A doubling of a 65,536-slot table (256 pages) moves a page at a time: the page an insert lands
// in, plus two more per insert and one per event round. Meanwhile every hash must be found in
// whichever table holds it, removes and stores of hashes in pages not moved yet must land, a
// round's slots found before an earlier op of the round moved their page must be looked up
// again, a worker's entries must be cleared from both tables, and the doubling must end.
TEST(PrefixIndexTest, ADoublingMovesPagesWhileEventsContinue) {
  PrefixIndexOptions opts;
  opts.initial_capacity = size_t{1} << 16;
  PrefixIndex index(opts);
  std::vector<WorkerSlot> ws;
  for (int i = 0; i < 4; ++i) ws.push_back(index.internWorker(10 + i));
  std::mt19937_64 rng(3);
  std::map<BlockHash, std::map<WorkerSlot, uint32_t>> ref;  // hash -> worker -> tier mask
  std::vector<BlockHash> hashes;
  auto check = [&](const char* when, bool counts = true) {
    if (counts) {
      ASSERT_EQ(index.numHashes(), ref.size()) << when;
    }
    size_t entries = 0;
    for (const auto& [h, held] : ref) {
      for (WorkerSlot w : ws) {
        auto it = held.find(w);
        ASSERT_EQ(index.mask(h, w), it == held.end() ? 0u : it->second) << when << " hash " << h;
      }
      entries += held.size();
    }
    if (counts) {
      ASSERT_EQ(index.numEntries(), entries) << when;
    }
  };
  // Fill to one hash below 3/4 of the slots, in events of 32 blocks of one worker.
  while (ref.size() < (size_t{3} << 14) - 1) {
    const WorkerSlot w = ws[rng() % ws.size()];
    std::vector<BlockHash> part;
    while (part.size() < 32 && ref.size() < (size_t{3} << 14) - 1) {
      const BlockHash h = rng();
      if (ref.count(h)) continue;
      part.push_back(h);
      hashes.push_back(h);
      ref[h][w] = 1;
    }
    index.addBlocks(w, part, Tier::kDevice);
  }
  ASSERT_FALSE(index.growing());
  ASSERT_EQ(index.tableSlots(), size_t{1} << 16);

  // One round of mixed events: 12 new hashes (the first starts the doubling, each moves pages),
  // then stores on other workers and tiers and removes of hashes that were indexed before.
  std::vector<KvEvent> batch;
  std::vector<PrefixIndex::WorkerEvent> refs;
  auto storeNew = [&](WorkerSlot w, size_t n) {
    std::vector<BlockHash> part;
    while (part.size() < n) {
      const BlockHash h = rng();
      if (ref.count(h)) continue;
      part.push_back(h);
      hashes.push_back(h);
      ref[h][w] |= 1;
    }
    batch.emplace_back(BlockStored{part, std::nullopt, Tier::kDevice});
    refs.push_back({w, &batch.back()});
  };
  auto touchOld = [&](size_t n) {
    for (size_t k = 0; k < n; ++k) {
      const WorkerSlot w = ws[rng() % ws.size()];
      const BlockHash h = hashes[rng() % hashes.size()];
      if (rng() % 2) {
        batch.emplace_back(BlockStored{{h}, std::nullopt, Tier::kHost});
        ref[h][w] |= 2;
      } else {
        batch.emplace_back(BlockRemoved{{h}, Tier::kDevice});
        if (auto it = ref[h].find(w); it != ref[h].end()) {
          it->second &= ~1u;
          if (it->second == 0) ref[h].erase(it);
        }
        if (ref[h].empty()) ref.erase(h);
      }
      refs.push_back({w, &batch.back()});
    }
  };
  batch.reserve(64);
  storeNew(ws[0], 12);
  touchOld(40);
  index.apply(refs);
  EXPECT_TRUE(index.growing());
  EXPECT_EQ(index.tableSlots(), size_t{1} << 17);
  check("after the first round");

  // A worker leaves while pages are still to move: queries stop reporting it at once, its
  // entries are swept after the doubling (until then they still count), and its slot is reused
  // only then.
  EXPECT_TRUE(index.growing());
  const WorkerSlot gone = ws[1];
  index.releaseWorker(11);
  EXPECT_EQ(index.sweepingWorkers(), 1u);
  std::vector<BlockHash> held_by_gone;
  for (auto it = ref.begin(); it != ref.end();) {
    if (it->second.count(gone)) held_by_gone.push_back(it->first);
    it->second.erase(gone);
    it = it->second.empty() ? ref.erase(it) : std::next(it);
  }
  ws.erase(ws.begin() + 1);
  check("after a worker left", false);
  ASSERT_GT(held_by_gone.size(), 1000u);
  std::vector<WorkerOverlap> got;
  for (size_t i = 0; i < 50; ++i) {
    const BlockHash h = held_by_gone[i];
    index.findOverlaps(std::vector<BlockHash>{h}, got);
    EXPECT_EQ(got.size(), ref.count(h) ? ref[h].size() : 0u);
    for (const WorkerOverlap& o : got) EXPECT_NE(o.worker, gone);
  }
  EXPECT_NE(index.internWorker(99), gone);  // not recycled while its entries remain

  // Rounds go on until the doubling ends (each round moves a page, some inserts more).
  int rounds = 0;
  while (index.growing() && rounds < 1000) {
    batch.clear();
    refs.clear();
    storeNew(ws[rng() % ws.size()], 2);
    touchOld(20);
    index.apply(refs);
    ++rounds;
  }
  EXPECT_FALSE(index.growing());
  EXPECT_LE(rounds, 256);  // at least a page per round
  // Then the sweep: kSweepSlots per round over the 2^17-slot table.
  int sweep_rounds = 0;
  while (index.sweepingWorkers() > 0 && sweep_rounds < 1000) {
    batch.clear();
    refs.clear();
    touchOld(4);
    index.apply(refs);
    ++sweep_rounds;
  }
  EXPECT_EQ(index.sweepingWorkers(), 0u);
  EXPECT_LE(sweep_rounds, static_cast<int>((size_t{1} << 17) / PrefixIndex::kSweepSlots));
  check("after the doubling and the sweep");
  EXPECT_EQ(index.internWorker(100), gone);  // recycled now
}

}  // namespace
}  // namespace turbine::kv
