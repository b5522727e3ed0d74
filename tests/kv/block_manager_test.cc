#include "kv/block_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <list>
#include <random>
#include <string>
#include <vector>

namespace turbine::kv {
namespace {

constexpr size_t kBlockBytes = 96;

// The bytes the test stores for a block: a function of its hash.
std::vector<uint8_t> blockData(BlockHash h) {
  std::vector<uint8_t> d(kBlockBytes);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>((h * 131 + i * 7) >> 1);
  return d;
}

KvBlockManager::CopyOut copyOf(BlockHash h, int* calls = nullptr) {
  return [h, calls](void* dst) {
    if (calls) ++*calls;
    const auto d = blockData(h);
    std::memcpy(dst, d.data(), d.size());
    return Status::ok();
  };
}

std::string tmpDir() { return std::filesystem::temp_directory_path().string(); }

std::unique_ptr<KvBlockManager> make(int64_t host, int64_t disk) {
  KvBlockManagerOptions o;
  o.block_bytes = kBlockBytes;
  o.host_blocks = host;
  o.disk_blocks = disk;
  o.disk_dir = tmpDir();
  auto m = KvBlockManager::create(o);
  EXPECT_TRUE(m.isOk()) << m.status().message();
  return std::move(m).value();
}

// Onboards `h` and checks the bytes that come back.
void expectData(KvBlockManager& m, BlockHash h) {
  std::vector<uint8_t> got(kBlockBytes);
  ASSERT_TRUE(m.onboard(h, [&](const void* src) {
                 std::memcpy(got.data(), src, got.size());
                 return Status::ok();
               }).isOk())
      << h;
  EXPECT_EQ(got, blockData(h)) << "block " << h;
}

// Replays the manager's events; the sets must be what find() reports.
void expectEventsMatch(KvBlockManager& m, KvBlockSet& set, const std::vector<BlockHash>& universe) {
  for (const auto& e : m.takeEvents()) set.apply(e);
  for (BlockHash h : universe) {
    const auto tier = m.find(h);
    EXPECT_EQ(set.contains(h, Tier::kHost), tier == Tier::kHost) << h;
    if (!set.contains(h, Tier::kHost)) {
      EXPECT_EQ(set.contains(h, Tier::kDisk), tier == Tier::kDisk) << h;
    }
  }
  EXPECT_EQ(set.size(Tier::kDevice), 0u);
}

TEST(KvBlockManager, RefusesBadOptions) {
  KvBlockManagerOptions o;
  o.disk_blocks = 4;
  o.disk_dir = tmpDir();
  EXPECT_EQ(KvBlockManager::create(o).status().code(), StatusCode::kInvalidArgument);  // no size
  o.disk_blocks = 0;
  o.block_bytes = 64;
  o.host_blocks = 0;
  EXPECT_EQ(KvBlockManager::create(o).status().code(), StatusCode::kInvalidArgument);  // no tier
  o.host_blocks = int64_t{1} << 40;  // 64 TiB of 64-byte blocks: more than any test machine has
  const auto huge = KvBlockManager::create(o);
  ASSERT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("larger than this machine's memory"), std::string::npos);
  o.host_blocks = 0;
  o.disk_blocks = 4;
  o.disk_dir = "/nonexistent/turbine-kv-test";
  const auto r = KvBlockManager::create(o);
  ASSERT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_NE(r.status().message().find("/nonexistent/turbine-kv-test"), std::string::npos);
}

TEST(KvBlockManager, HostTierIsAnLruWithEvents) {
  auto m = make(3, 0);
  KvBlockSet set;
  ASSERT_TRUE(m->offload(1, std::nullopt, copyOf(1)).isOk());
  ASSERT_TRUE(m->offload(2, 1, copyOf(2)).isOk());
  ASSERT_TRUE(m->offload(3, 2, copyOf(3)).isOk());
  const auto first = m->takeEvents();
  ASSERT_EQ(first.size(), 1u) << "a chain offloaded in order is one stored event";
  const auto& stored = std::get<BlockStored>(first[0]);
  EXPECT_EQ(stored.block_hashes, (std::vector<BlockHash>{1, 2, 3}));
  EXPECT_EQ(stored.tier, Tier::kHost);
  EXPECT_FALSE(stored.parent_hash.has_value());
  set.apply(first[0]);
  m->touch(1);  // 2 is now the least recently used
  ASSERT_TRUE(m->offload(4, 3, copyOf(4)).isOk());
  EXPECT_EQ(m->find(2), std::nullopt);
  EXPECT_EQ(m->find(1), Tier::kHost);
  expectEventsMatch(*m, set, {1, 2, 3, 4});
  for (BlockHash h : {1, 3, 4}) expectData(*m, h);
  EXPECT_EQ(m->onboard(2, [](const void*) { return Status::ok(); }).code(), StatusCode::kNotFound);
  const auto st = m->stats();
  EXPECT_EQ(st.host_used, 3);
  EXPECT_EQ(st.offloaded, 4);
  EXPECT_EQ(st.dropped, 1);
  EXPECT_EQ(st.onboarded_host, 3);
}

TEST(KvBlockManager, MetadataOnlyManagerKeepsOrderAndEventsWithoutCopies) {
  KvBlockManagerOptions o;
  o.host_blocks = 2;  // block_bytes 0: the simulated engine's
  auto m = KvBlockManager::create(o);
  ASSERT_TRUE(m.isOk()) << m.status().message();
  int calls = 0;
  for (BlockHash h : {1, 2, 3}) ASSERT_TRUE((*m)->offload(h, std::nullopt, copyOf(h, &calls)).isOk());
  EXPECT_EQ((*m)->find(1), std::nullopt);
  EXPECT_EQ((*m)->find(3), Tier::kHost);
  ASSERT_TRUE((*m)->onboard(2, [&](const void*) { return ++calls, Status::ok(); }).isOk());
  EXPECT_EQ(calls, 0);
  KvBlockSet set;
  for (const auto& e : (*m)->takeEvents()) set.apply(e);
  EXPECT_EQ(set.hashes(Tier::kHost), (std::unordered_set<BlockHash>{2, 3}));
}

TEST(KvBlockManager, OffloadOfAHeldBlockCopiesNothing) {
  auto m = make(2, 0);
  int calls = 0;
  ASSERT_TRUE(m->offload(7, std::nullopt, copyOf(7, &calls)).isOk());
  ASSERT_TRUE(m->offload(7, std::nullopt, copyOf(7, &calls)).isOk());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(m->stats().offload_hits, 1);
}

TEST(KvBlockManager, FailedCopyStoresNothingAndKeepsTheSlot) {
  auto m = make(1, 0);
  const auto fail = [](void*) { return internalError("copy failed"); };
  EXPECT_FALSE(m->offload(5, std::nullopt, fail).isOk());
  EXPECT_EQ(m->find(5), std::nullopt);
  EXPECT_TRUE(m->takeEvents().empty());
  ASSERT_TRUE(m->offload(6, std::nullopt, copyOf(6)).isOk());  // the slot is still there
  expectData(*m, 6);
}

TEST(KvBlockManager, HostEvictionsAreDemotedToDisk) {
  auto m = make(2, 3);
  KvBlockSet set;
  for (BlockHash h = 1; h <= 5; ++h) {
    ASSERT_TRUE(m->offload(h, h > 1 ? std::optional<BlockHash>(h - 1) : std::nullopt, copyOf(h)).isOk());
  }
  for (BlockHash h : {1, 2, 3}) EXPECT_EQ(m->find(h), Tier::kDisk) << h;
  for (BlockHash h : {4, 5}) EXPECT_EQ(m->find(h), Tier::kHost) << h;
  expectEventsMatch(*m, set, {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(m->offload(6, 5, copyOf(6)).isOk());  // 4 demoted, 1 dropped from disk
  EXPECT_EQ(m->find(1), std::nullopt);
  EXPECT_EQ(m->find(4), Tier::kDisk);
  expectEventsMatch(*m, set, {1, 2, 3, 4, 5, 6});
  expectData(*m, 5);
  expectData(*m, 6);  // host: 5, 6 (most recent); disk: 2, 3, 4 (most recent)
  expectData(*m, 4);  // from disk, promoted to host: 5 demoted to disk, 2 dropped from it
  EXPECT_EQ(m->find(4), Tier::kHost);
  EXPECT_EQ(m->find(5), Tier::kDisk);
  EXPECT_EQ(m->find(2), std::nullopt);
  expectEventsMatch(*m, set, {1, 2, 3, 4, 5, 6});
  expectData(*m, 5);
  const auto st = m->stats();
  EXPECT_EQ(st.demoted, 6);  // 1, 2, 3, 4, 5, then 6 (making room for 5's promotion)
  EXPECT_EQ(st.promoted, 2);
  EXPECT_EQ(st.onboarded_disk, 2);
  EXPECT_EQ(st.onboarded_host, 2);
  EXPECT_EQ(st.dropped, 3);
}

TEST(KvBlockManager, DiskOnlyTierAndClear) {
  auto m = make(0, 2);
  for (BlockHash h : {10, 11, 12}) ASSERT_TRUE(m->offload(h, std::nullopt, copyOf(h)).isOk());
  EXPECT_EQ(m->find(10), std::nullopt);
  expectData(*m, 11);
  expectData(*m, 12);
  m->clear();
  EXPECT_EQ(m->find(11), std::nullopt);
  EXPECT_EQ(m->stats().disk_used, 0);
  ASSERT_TRUE(m->offload(13, std::nullopt, copyOf(13)).isOk());
  ASSERT_TRUE(m->offload(14, std::nullopt, copyOf(14)).isOk());
  expectData(*m, 13);
  expectData(*m, 14);
}

// A reference of the policy (two LRU lists, most recent at the front) against random operations.
struct ReferenceTiers {
  int64_t host_cap, disk_cap;
  std::list<BlockHash> host, disk;
  static bool has(const std::list<BlockHash>& l, BlockHash h) {
    return std::find(l.begin(), l.end(), h) != l.end();
  }
  static void front(std::list<BlockHash>& l, BlockHash h) {
    l.remove(h);
    l.push_front(h);
  }
  void toDisk(BlockHash h) {
    if (has(disk, h)) return front(disk, h);
    if (static_cast<int64_t>(disk.size()) == disk_cap) disk.pop_back();
    disk.push_front(h);
  }
  void offload(BlockHash h) {
    if (host_cap == 0) return toDisk(h);
    if (has(host, h)) return front(host, h);
    if (static_cast<int64_t>(host.size()) == host_cap) {
      const BlockHash victim = host.back();
      host.pop_back();
      if (disk_cap > 0) toDisk(victim);
    }
    host.push_front(h);
  }
  void onboard(BlockHash h) {
    if (has(host, h)) return front(host, h);
    if (!has(disk, h)) return;
    front(disk, h);
    if (host_cap > 0) offload(h);  // promoted
  }
  void touch(BlockHash h) {
    if (has(host, h)) front(host, h);
    if (has(disk, h)) front(disk, h);
  }
};

TEST(KvBlockManager, MatchesAReferenceOnRandomOperations) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 40; ++round) {
    const int64_t host_cap = rng() % 5, disk_cap = (host_cap == 0 ? 1 : 0) + rng() % 5;
    auto m = make(host_cap, disk_cap);
    ReferenceTiers ref{host_cap, disk_cap, {}, {}};
    KvBlockSet set;
    std::vector<BlockHash> universe;
    for (BlockHash h = 100; h < 112; ++h) universe.push_back(h);
    for (int op = 0; op < 300; ++op) {
      const BlockHash h = universe[rng() % universe.size()];
      switch (rng() % 8) {
        case 0: case 1: case 2: case 3:
          ASSERT_TRUE(m->offload(h, h - 1, copyOf(h)).isOk());
          ref.offload(h);
          break;
        case 4: case 5:
          if (m->find(h)) expectData(*m, h);
          ref.onboard(h);
          break;
        case 6:
          m->touch(h);
          ref.touch(h);
          break;
        default:
          if (rng() % 20 == 0) {
            m->clear();
            ref.host.clear();
            ref.disk.clear();
            set = KvBlockSet{};
            m->takeEvents();
          }
      }
      for (BlockHash u : universe) {
        std::optional<Tier> want;
        if (ReferenceTiers::has(ref.host, u)) want = Tier::kHost;
        else if (ReferenceTiers::has(ref.disk, u)) want = Tier::kDisk;
        ASSERT_EQ(m->find(u), want) << "round " << round << " op " << op << " block " << u;
      }
      for (const auto& e : m->takeEvents()) set.apply(e);
      ASSERT_EQ(set.size(Tier::kHost), ref.host.size());
      ASSERT_EQ(set.size(Tier::kDisk), ref.disk.size());
      for (BlockHash u : ref.host) ASSERT_TRUE(set.contains(u, Tier::kHost));
      for (BlockHash u : ref.disk) ASSERT_TRUE(set.contains(u, Tier::kDisk));
    }
  }
}

TEST(KvEvents, AppendEventMergesOnlyWithinATier) {
  std::vector<KvEvent> ev;
  appendEvent(ev, BlockStored{{1}, std::nullopt, Tier::kDevice});
  appendEvent(ev, BlockStored{{2}, 1, Tier::kDevice});
  appendEvent(ev, BlockStored{{3}, 2, Tier::kHost});  // another tier: a new event
  appendEvent(ev, BlockStored{{9}, 5, Tier::kHost});  // not the chain's continuation
  appendEvent(ev, BlockRemoved{{1}, Tier::kDevice});
  appendEvent(ev, BlockRemoved{{2}, Tier::kDevice});
  appendEvent(ev, BlockRemoved{{3}, Tier::kHost});
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(std::get<BlockStored>(ev[0]).block_hashes, (std::vector<BlockHash>{1, 2}));
  EXPECT_EQ(std::get<BlockRemoved>(ev[3]).block_hashes, (std::vector<BlockHash>{1, 2}));
  EXPECT_EQ(std::get<BlockRemoved>(ev[4]).tier, Tier::kHost);
}

}  // namespace
}  // namespace turbine::kv
