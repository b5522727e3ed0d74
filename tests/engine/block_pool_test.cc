#include "engine/block_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace turbine::engine {
namespace {

using kv::BlockHash;

// Collects the device hashes reported as stored/removed, in order.
struct EventLog {
  std::vector<BlockHash> stored, removed;
  int cleared = 0;
  void take(BlockPool& pool) {
    for (const auto& e : pool.takeEvents()) {
      if (auto* s = std::get_if<kv::BlockStored>(&e)) {
        stored.insert(stored.end(), s->block_hashes.begin(), s->block_hashes.end());
      } else if (auto* r = std::get_if<kv::BlockRemoved>(&e)) {
        removed.insert(removed.end(), r->block_hashes.begin(), r->block_hashes.end());
      } else {
        ++cleared;
      }
    }
  }
};

TEST(BlockPool, AllocateReleaseCounts) {
  BlockPool pool(8, true);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(5, a));
  EXPECT_EQ(pool.numUsed(), 5);
  EXPECT_EQ(pool.numFree(), 3);
  std::vector<BlockId> b;
  EXPECT_FALSE(pool.allocate(4, b));  // not enough: nothing changes
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(pool.numFree(), 3);
  pool.release(a);
  EXPECT_EQ(pool.numFree(), 8);
  EXPECT_TRUE(pool.checkInvariants().isOk());
}

TEST(BlockPool, CommittedBlocksStayCachedAndAreHit) {
  BlockPool pool(4, true);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(2, a));
  EXPECT_EQ(pool.commit(a[0], 100, std::nullopt), a[0]);
  EXPECT_EQ(pool.commit(a[1], 101, BlockHash{100}), a[1]);
  pool.release(a);
  EXPECT_EQ(pool.numCachedFree(), 2);
  EXPECT_EQ(pool.numFree(), 2);
  ASSERT_EQ(pool.lookup(100), a[0]);
  pool.acquire(a[0]);
  EXPECT_EQ(pool.numCachedFree(), 1);
  EXPECT_EQ(pool.refCount(a[0]), 1);
  EXPECT_TRUE(pool.checkInvariants().isOk());
  EventLog log;
  log.take(pool);
  EXPECT_EQ(log.stored, (std::vector<BlockHash>{100, 101}));
}

TEST(BlockPool, StoredEventCarriesParentAndCoalescesChains) {
  BlockPool pool(4, true);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(3, a));
  (void)pool.commit(a[0], 1, std::nullopt);
  (void)pool.commit(a[1], 2, BlockHash{1});
  (void)pool.commit(a[2], 3, BlockHash{2});
  auto events = pool.takeEvents();
  ASSERT_EQ(events.size(), 1u);
  const auto& s = std::get<kv::BlockStored>(events[0]);
  EXPECT_EQ(s.block_hashes, (std::vector<BlockHash>{1, 2, 3}));
  EXPECT_FALSE(s.parent_hash.has_value());
  EXPECT_EQ(s.tier, kv::Tier::kDevice);
}

TEST(BlockPool, DuplicateHashSwapsToCachedBlock) {
  BlockPool pool(4, true);
  std::vector<BlockId> a, b;
  ASSERT_TRUE(pool.allocate(1, a));
  ASSERT_TRUE(pool.allocate(1, b));
  (void)pool.commit(a[0], 7, std::nullopt);
  const BlockId kept = pool.commit(b[0], 7, std::nullopt);
  EXPECT_EQ(kept, a[0]);
  EXPECT_EQ(pool.refCount(a[0]), 2);
  EXPECT_EQ(pool.refCount(b[0]), 0);  // back on the free list
  EXPECT_EQ(pool.numFree(), 3);
  EXPECT_TRUE(pool.checkInvariants().isOk());
  EventLog log;
  log.take(pool);
  EXPECT_EQ(log.stored.size(), 1u);  // stored once
}

TEST(BlockPool, EvictsLeastRecentlyUsedLeafFirst) {
  BlockPool pool(4, true);
  // Chain 10 -> 11 -> 12, released tail first; then an unrelated block 20 released last.
  std::vector<BlockId> chain, single;
  ASSERT_TRUE(pool.allocate(3, chain));
  (void)pool.commit(chain[0], 10, std::nullopt);
  (void)pool.commit(chain[1], 11, BlockHash{10});
  (void)pool.commit(chain[2], 12, BlockHash{11});
  ASSERT_TRUE(pool.allocate(1, single));
  (void)pool.commit(single[0], 20, std::nullopt);
  // Release the ROOT first (oldest), then the rest: plain LRU would evict 10 first, orphaning
  // 11 and 12; leaf-first must evict 12, then 11, then 10.
  pool.release(std::vector<BlockId>{chain[0], chain[1], chain[2]});
  pool.release(single);
  pool.takeEvents();
  EventLog log;
  std::vector<BlockId> got;
  ASSERT_TRUE(pool.allocate(1, got));
  log.take(pool);
  EXPECT_EQ(log.removed, (std::vector<BlockHash>{12}));
  ASSERT_TRUE(pool.allocate(2, got));
  log.take(pool);
  EXPECT_EQ(log.removed, (std::vector<BlockHash>{12, 11, 10}));
  EXPECT_TRUE(pool.lookup(20).has_value());
  EXPECT_TRUE(pool.checkInvariants().isOk());
}

TEST(BlockPool, ResetForgetsEveryHash) {
  BlockPool pool(4, true);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(2, a));
  (void)pool.commit(a[0], 1, std::nullopt);
  (void)pool.commit(a[1], 2, BlockHash{1});
  pool.release(std::vector<BlockId>{a[1]});
  pool.resetPrefixCache();
  EXPECT_FALSE(pool.lookup(1).has_value());
  EXPECT_EQ(pool.numCachedFree(), 0);
  EXPECT_EQ(pool.numFree(), 3);
  EXPECT_EQ(pool.numUsed(), 1);
  EventLog log;
  log.take(pool);
  EXPECT_EQ(log.cleared, 1);
  EXPECT_TRUE(pool.checkInvariants().isOk());
}

TEST(BlockPool, CachingOffNeverHashes) {
  BlockPool pool(2, false);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(1, a));
  (void)pool.commit(a[0], 5, std::nullopt);
  pool.release(a);
  EXPECT_FALSE(pool.lookup(5).has_value());
  EXPECT_TRUE(pool.takeEvents().empty());
  EXPECT_EQ(pool.numFree(), 2);
}

// Random chains of sequences acquire prefixes, commit, release; the invariants hold and the
// events replayed give exactly the pool's hash set.
TEST(BlockPool, RandomizedInvariantsAndEventReplay) {
  std::mt19937 rng(42);
  BlockPool pool(64, true);
  kv::KvBlockSet mirror;
  struct Seq {
    std::vector<BlockId> blocks;
    std::vector<BlockHash> hashes;
  };
  std::vector<Seq> live;
  for (int iter = 0; iter < 5000; ++iter) {
    if (!live.empty() && (rng() % 3 == 0 || pool.numAvailable() < 8)) {
      const size_t i = rng() % live.size();
      std::reverse(live[i].blocks.begin(), live[i].blocks.end());
      pool.release(live[i].blocks);
      live.erase(live.begin() + static_cast<long>(i));
    } else {
      // A chain over a small alphabet of prefixes so that hits are common.
      Seq s;
      const int len = 1 + static_cast<int>(rng() % 6);
      BlockHash h = 0;
      bool hitting = true;
      for (int b = 0; b < len; ++b) {
        const BlockHash parent = h;
        h = h * 31 + 1 + rng() % 3;
        s.hashes.push_back(h);
        if (hitting) {
          if (auto c = pool.lookup(h)) {
            pool.acquire(*c);
            s.blocks.push_back(*c);
            continue;
          }
          hitting = false;
        }
        std::vector<BlockId> nb;
        if (!pool.allocate(1, nb)) break;
        std::optional<BlockHash> p;
        if (b > 0) p = parent;
        s.blocks.push_back(pool.commit(nb[0], h, p));
      }
      live.push_back(std::move(s));
    }
    for (const auto& e : pool.takeEvents()) mirror.apply(e);
    ASSERT_TRUE(pool.checkInvariants().isOk()) << pool.checkInvariants().toString();
    if (iter % 500 == 0) {
      auto cached = pool.cachedHashes();
      std::set<BlockHash> a(cached.begin(), cached.end());
      std::set<BlockHash> b(mirror.hashes().begin(), mirror.hashes().end());
      ASSERT_EQ(a, b) << "at iteration " << iter;
    }
  }
  for (auto& s : live) pool.release(s.blocks);
  EXPECT_EQ(pool.numUsed(), 0);
  EXPECT_EQ(pool.numFree() + pool.numCachedFree(), 64);
}

}  // namespace
}  // namespace turbine::engine
