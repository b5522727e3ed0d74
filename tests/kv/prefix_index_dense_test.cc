// PrefixIndex with many workers per block (the dense holder sets of popular blocks, and their
// conversions back and forth to sorted lists), differential against a std::map reference of
// (hash -> worker -> tier mask), with predictions, removals, clears and worker releases.
#include "kv/prefix_index.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace turbine::kv {
namespace {

constexpr uint32_t kPred = PrefixIndex::kPredictedBit;

struct MapReference {
  std::map<BlockHash, std::map<WorkerSlot, uint32_t>> held;
  std::array<double, 32> weight{};

  MapReference() {
    const std::array<double, kNumTiers> tiers = {1.0, 0.75, 0.5, 0.25};
    for (uint32_t m = 1; m < 32; ++m) {
      double best = (m & kPred) ? 1.0 : 0.0;
      for (int t = 0; t < kNumTiers; ++t)
        if (m & (1u << t)) best = std::max(best, tiers[t]);
      weight[m] = best;
    }
  }
  void set(BlockHash h, WorkerSlot w, uint32_t m) {
    if (m == 0) {
      auto it = held.find(h);
      if (it == held.end()) return;
      it->second.erase(w);
      if (it->second.empty()) held.erase(it);
    } else {
      held[h][w] = m;
    }
  }
  uint32_t get(BlockHash h, WorkerSlot w) const {
    auto it = held.find(h);
    if (it == held.end()) return 0;
    auto jt = it->second.find(w);
    return jt == it->second.end() ? 0 : jt->second;
  }
  void store(WorkerSlot w, const std::vector<BlockHash>& hs, Tier t) {
    for (auto h : hs) set(h, w, (get(h, w) | (1u << static_cast<int>(t))) & ~kPred);
  }
  void remove(WorkerSlot w, const std::vector<BlockHash>& hs, Tier t) {
    for (auto h : hs) set(h, w, get(h, w) & ~((1u << static_cast<int>(t)) | kPred));
  }
  void predict(WorkerSlot w, const std::vector<BlockHash>& hs) {
    for (auto h : hs)
      if ((get(h, w) & (kPred - 1)) == 0) set(h, w, kPred);
  }
  void clear(WorkerSlot w) {
    for (auto it = held.begin(); it != held.end();) {
      it->second.erase(w);
      it = it->second.empty() ? held.erase(it) : std::next(it);
    }
  }
  size_t entries() const {
    size_t n = 0;
    for (const auto& [h, ws] : held) n += ws.size();
    return n;
  }
  size_t predictions() const {
    size_t n = 0;
    for (const auto& [h, ws] : held)
      for (const auto& [w, m] : ws) n += (m & kPred) ? 1 : 0;
    return n;
  }
  std::map<WorkerSlot, std::pair<int32_t, double>> overlaps(const std::vector<BlockHash>& q) const {
    std::map<WorkerSlot, std::pair<int32_t, double>> out;
    if (q.empty()) return out;
    auto first = held.find(q[0]);
    if (first == held.end()) return out;
    for (const auto& [w, m0] : first->second) {
      int32_t run = 0;
      double sum = 0;
      for (auto h : q) {
        const uint32_t m = get(h, w);
        if (m == 0) break;
        ++run;
        sum += weight[m];
      }
      out[w] = {run, sum};
    }
    return out;
  }
};

void expectSame(PrefixIndex& index, const MapReference& ref, const std::vector<std::vector<BlockHash>>& chains,
                const std::string& where) {
  ASSERT_EQ(index.numEntries(), ref.entries()) << where;
  ASSERT_EQ(index.numHashes(), ref.held.size()) << where;
  ASSERT_EQ(index.numPredictions(), ref.predictions()) << where;
  std::vector<WorkerOverlap> got;
  for (const auto& q : chains) {
    for (size_t len : {q.size(), q.size() / 2, size_t{1}}) {
      const std::vector<BlockHash> part(q.begin(), q.begin() + static_cast<long>(len));
      index.findOverlaps(part, got);
      const auto want = ref.overlaps(part);
      ASSERT_EQ(got.size(), want.size()) << where;
      for (const auto& o : got) {
        auto it = want.find(o.worker);
        ASSERT_NE(it, want.end()) << where << " worker " << o.worker;
        ASSERT_EQ(o.blocks, it->second.first) << where << " worker " << o.worker;
        ASSERT_DOUBLE_EQ(o.weighted, it->second.second) << where << " worker " << o.worker;
      }
    }
  }
  for (const auto& [h, ws] : ref.held)
    for (const auto& [w, m] : ws) ASSERT_EQ(index.mask(h, w), m) << where;
}

TEST(PrefixIndexDenseTest, ManyHoldersMatchMapReference) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::mt19937_64 rng(seed);
    PrefixIndexOptions opts;
    opts.initial_capacity = 16;
    PrefixIndex index(opts);
    MapReference ref;
    constexpr int kWorkers = 200;
    std::vector<WorkerSlot> slots;
    for (int i = 0; i < kWorkers; ++i) slots.push_back(index.internWorker(1000 + i));
    // Popular prefixes (8 blocks) that most workers store, then private tails.
    std::vector<std::vector<BlockHash>> chains;
    std::vector<std::vector<BlockHash>> popular(4);
    for (auto& p : popular)
      for (int i = 0; i < 8; ++i) p.push_back(rng());
    for (int c = 0; c < 40; ++c) {
      std::vector<BlockHash> ch = popular[rng() % popular.size()];
      ch.resize(rng() % 9);
      while (ch.size() < 12) ch.push_back(rng() % 8 == 0 ? rng() % 32 : rng());
      chains.push_back(ch);
    }
    size_t max_dense = 0;
    bool dense_shrank = false;
    for (int step = 0; step < 6000; ++step) {
      // Skewed: a few workers get most events, so holder counts cross the dense thresholds both ways.
      const WorkerSlot w = slots[rng() % 4 == 0 ? rng() % 8 : rng() % kWorkers];
      const auto& ch = chains[rng() % chains.size()];
      const size_t len = 1 + rng() % ch.size();
      const std::vector<BlockHash> part(ch.begin(), ch.begin() + static_cast<long>(len));
      const auto tier = static_cast<Tier>(rng() % 4 == 0 ? rng() % kNumTiers : 0);
      const auto r = rng() % 1000;
      const bool removing = (step / 1500) % 2 == 1;  // phases: mostly store, then mostly remove
      if (r < (removing ? 50u : 600u)) {
        index.addBlocks(w, part, tier);
        ref.store(w, part, tier);
      } else if (r < (removing ? 900u : 800u)) {
        index.removeBlocks(w, part, tier);
        ref.remove(w, part, tier);
      } else if (r < (removing ? 880u : 995u)) {
        index.predict(w, part, step);
        ref.predict(w, part);
      } else {
        index.clearWorker(w);
        ref.clear(w);
      }
      if (index.numDenseHashes() < max_dense) dense_shrank = true;
      max_dense = std::max(max_dense, index.numDenseHashes());
      if (step % 250 == 0) expectSame(index, ref, chains, "seed " + std::to_string(seed) + " step " + std::to_string(step));
    }
    expectSame(index, ref, chains, "end");
    EXPECT_GT(max_dense, 0u) << "no holder set became dense: the test does not cover it";
    EXPECT_TRUE(dense_shrank) << "no dense holder set went back to a list";
    // Releasing workers drops their entries; the slots come back.
    for (int i = 0; i < kWorkers; i += 3) {
      index.releaseWorker(1000 + i);
      ref.clear(slots[i]);
    }
    expectSame(index, ref, chains, "after release");
  }
}

TEST(PrefixIndexDenseTest, PopularBlockHeldByAllWorkers) {
  PrefixIndex index;
  constexpr int kWorkers = 1000;
  for (int i = 0; i < kWorkers; ++i) index.internWorker(static_cast<WorkerId>(i + 1));
  const std::vector<BlockHash> shared = {11, 12, 13, 14};
  for (WorkerSlot w = 0; w < kWorkers; ++w) {
    index.addBlocks(w, std::span(shared).first(1 + w % 4), w == 7 ? Tier::kHost : Tier::kDevice);
  }
  std::vector<WorkerOverlap> out;
  index.findOverlaps(std::vector<BlockHash>{11, 12, 13, 14, 15}, out);
  ASSERT_EQ(out.size(), static_cast<size_t>(kWorkers));
  for (const auto& o : out) {
    EXPECT_EQ(o.blocks, static_cast<int32_t>(1 + o.worker % 4));
    EXPECT_DOUBLE_EQ(o.weighted, o.worker == 7 ? 0.75 * 4 : o.blocks);
  }
  // Half the workers drop block 11: the others keep their runs.
  for (WorkerSlot w = 0; w < kWorkers; w += 2) index.removeBlocks(w, std::vector<BlockHash>{11}, Tier::kDevice);
  index.findOverlaps(shared, out);
  EXPECT_EQ(out.size(), static_cast<size_t>(kWorkers / 2));
  for (const auto& o : out) EXPECT_EQ(o.worker % 2, 1u);
}

}  // namespace
}  // namespace turbine::kv
