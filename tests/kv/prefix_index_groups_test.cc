// PrefixIndex::findOverlapGroups (overlaps grouped by run length, as bitsets) against
// findOverlaps (one record per worker), on random indexes with popular (dense) blocks, all tiers
// and predictions, and more than one 64-bit word of worker slots.
#include <gtest/gtest.h>

#include <bit>
#include <map>
#include <random>
#include <tuple>

#include "kv/prefix_index.h"

namespace turbine::kv {
namespace {

std::map<WorkerSlot, std::pair<int32_t, double>> expand(const PrefixIndex& index, const OverlapGroups& g) {
  std::map<WorkerSlot, std::pair<int32_t, double>> out;
  int32_t last_depth = -1;
  size_t matched = 0;
  for (const auto& grp : g.groups) {
    EXPECT_GT(grp.depth, last_depth);  // ascending, one group per run length
    last_depth = grp.depth;
    for (uint32_t j = 0; j < grp.n; ++j) {
      for (uint64_t word = g.words[grp.offset + j]; word != 0; word &= word - 1) {
        const auto w = static_cast<WorkerSlot>((grp.lo + j) * 64 + static_cast<uint32_t>(std::countr_zero(word)));
        EXPECT_FALSE(out.count(w)) << "worker " << w << " in two groups";
        out[w] = {grp.depth, g.partial ? index.runWeight(w, grp.depth) : static_cast<double>(grp.depth)};
        ++matched;
      }
    }
  }
  EXPECT_EQ(matched, g.matched);
  return out;
}

TEST(PrefixIndexGroupsTest, GroupsMatchThePerWorkerOverlaps) {
  for (int seed = 0; seed < 4; ++seed) {
    std::mt19937_64 rng(seed);
    PrefixIndex index;
    const int workers = 150 + 40 * seed;
    std::vector<WorkerSlot> slots;
    for (int w = 0; w < workers; ++w) slots.push_back(index.internWorker(static_cast<WorkerId>(w + 1)));
    std::vector<std::vector<BlockHash>> prefixes(5);
    for (auto& p : prefixes) for (int i = 0; i < 10; ++i) p.push_back(rng());
    auto prompt = [&] {
      const auto& p = prefixes[rng() % prefixes.size()];
      std::vector<BlockHash> v(p.begin(), p.begin() + static_cast<long>(rng() % (p.size() + 1)));
      while (v.size() < 14) v.push_back(rng() % 50 + 1);  // a few shared tails too
      return v;
    };
    for (int e = 0; e < 3000; ++e) {
      const WorkerSlot w = slots[rng() % slots.size()];
      const auto hs = prompt();
      const auto len = 1 + rng() % hs.size();
      const std::span<const BlockHash> part(hs.data(), len);
      const uint64_t op = rng() % 10;
      if (op < 6) {
        index.addBlocks(w, part, rng() % 4 == 0 ? static_cast<Tier>(rng() % kNumTiers) : Tier::kDevice);
      } else if (op < 8) {
        index.predict(w, part, 0);
      } else {
        index.removeBlocks(w, part, Tier::kDevice);
      }
      if (e % 10 != 0) continue;
      const auto q = prompt();
      std::vector<WorkerOverlap> flat;
      index.findOverlaps(q, flat);
      std::map<WorkerSlot, std::pair<int32_t, double>> want;
      for (const auto& o : flat) want[o.worker] = {o.blocks, o.weighted};
      OverlapGroups g;
      index.findOverlapGroups(q, g);
      ASSERT_EQ(expand(index, g), want) << "seed " << seed << " event " << e;
    }
    EXPECT_GT(index.numDenseHashes(), 0u);  // popular blocks went dense
  }
}

TEST(PrefixIndexGroupsTest, EmptyAndUnknownPrompts) {
  PrefixIndex index;
  const WorkerSlot a = index.internWorker(1);
  index.addBlocks(a, std::vector<BlockHash>{1, 2, 3}, Tier::kDevice);
  OverlapGroups g;
  index.findOverlapGroups(std::vector<BlockHash>{}, g);
  EXPECT_TRUE(g.groups.empty());
  index.findOverlapGroups(std::vector<BlockHash>{9, 1}, g);
  EXPECT_TRUE(g.groups.empty());
  EXPECT_EQ(g.matched, 0u);
  index.findOverlapGroups(std::vector<BlockHash>{1, 2, 7}, g);
  ASSERT_EQ(g.groups.size(), 1u);
  EXPECT_EQ(g.groups[0].depth, 2);
  EXPECT_EQ(g.matched, 1u);
}

}  // namespace
}  // namespace turbine::kv
