// SmallBlockArena and the huge-page allocators: blocks never overlap (each is filled with its own
// pattern and checked after random allocations and frees, also from several threads), are aligned
// to their size up to a cache line, are reused after a free, and the byte accounting returns to
// where it started.
#include "kv/small_block_arena.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "kv/huge_page_allocator.h"

namespace turbine::kv {
namespace {

struct Block {
  uint8_t* p;
  size_t bytes;
  uint8_t fill;
};

bool intact(const Block& b) {
  for (size_t i = 0; i < b.bytes; ++i) {
    if (b.p[i] != b.fill) return false;
  }
  return true;
}

// Random allocations and frees of 1 B .. 64 KiB; every live block keeps its pattern.
void churn(uint64_t seed, int steps) {
  SmallBlockArena& arena = SmallBlockArena::instance();
  std::mt19937_64 rng(seed);
  std::vector<Block> live;
  for (int step = 0; step < steps; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      // Mostly small blocks, as holder lists are; now and then a large one.
      const size_t bytes = rng() % 8 == 0 ? 1 + rng() % SmallBlockArena::kMaxBlock : 1 + rng() % 300;
      auto* p = static_cast<uint8_t*>(arena.allocate(bytes));
      ASSERT_NE(p, nullptr);
      const size_t cls = std::bit_ceil(std::max(bytes, SmallBlockArena::kMinBlock));
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % std::min<size_t>(cls, 64), 0u) << bytes;
      const auto fill = static_cast<uint8_t>(rng());
      std::memset(p, fill, bytes);
      live.push_back({p, bytes, fill});
    } else {
      const size_t k = rng() % live.size();
      ASSERT_TRUE(intact(live[k])) << "block of " << live[k].bytes << " bytes overwritten";
      arena.deallocate(live[k].p, live[k].bytes);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (const Block& b : live) {
    ASSERT_TRUE(intact(b)) << "block of " << b.bytes << " bytes overwritten";
    arena.deallocate(b.p, b.bytes);
  }
}

TEST(SmallBlockArenaTest, BlocksAreDistinctAlignedAndAccounted) {
  const auto before = SmallBlockArena::instance().stats();
  churn(1, 50000);
  const auto after = SmallBlockArena::instance().stats();
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_GE(after.chunk_bytes, after.live_bytes);
  EXPECT_EQ(after.chunk_bytes % SmallBlockArena::kChunk, 0u);
}

TEST(SmallBlockArenaTest, FreedBlocksAreReused) {
  SmallBlockArena& arena = SmallBlockArena::instance();
  std::vector<void*> first;
  for (int i = 0; i < 1000; ++i) first.push_back(arena.allocate(24));
  const size_t reserved = arena.stats().chunk_bytes;
  for (void* p : first) arena.deallocate(p, 24);
  std::vector<void*> second;
  for (int i = 0; i < 1000; ++i) second.push_back(arena.allocate(20));  // the same 32-byte class
  EXPECT_EQ(arena.stats().chunk_bytes, reserved);  // nothing new was carved
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  EXPECT_EQ(first, second);
  for (void* p : second) arena.deallocate(p, 20);
}

TEST(SmallBlockArenaTest, ThreadsDoNotCorruptEachOther) {
  const auto before = SmallBlockArena::instance().stats();
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t) threads.emplace_back([t] { churn(100 + t, 20000); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(SmallBlockArena::instance().stats().live_bytes, before.live_bytes);
}

TEST(HugePageAllocatorTest, ServesVectorsOfAnySize) {
  // Through every arena class, operator new past kMaxBlock and a huge-page mapping from 2 MiB,
  // element values kept across growth.
  std::vector<uint32_t, HugePageAllocator<uint32_t>> v;
  for (uint32_t i = 0; i < 1000000; ++i) v.push_back(i * 7);
  for (uint32_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], i * 7);
  v.shrink_to_fit();
  std::vector<uint64_t, HugePageAllocator<uint64_t>> w(3, 5);
  EXPECT_EQ(w[2], 5u);
}

TEST(HugePageAllocatorTest, LargeTablesAreHugePageAlignedAndWritable) {
  HugePageAllocator<uint64_t> alloc;
  const size_t n = (size_t{5} << 20) / sizeof(uint64_t);  // 5 MiB: rounded up to 6 MiB
  uint64_t* p = alloc.allocate(n);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePageBytes, 0u);
  for (size_t i = 0; i < n; i += 512) p[i] = i;
  for (size_t i = 0; i < n; i += 512) ASSERT_EQ(p[i], i);
  alloc.deallocate(p, n);
  // Up to 64 KiB from the arena (aligned to a line from 64 bytes up), then operator new.
  const size_t live = SmallBlockArena::instance().stats().live_bytes;
  uint64_t* small = alloc.allocate(100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 64, 0u);
  EXPECT_EQ(SmallBlockArena::instance().stats().live_bytes, live + 1024);  // 800 B -> 1 KiB class
  alloc.deallocate(small, 100);
  EXPECT_EQ(SmallBlockArena::instance().stats().live_bytes, live);
  uint64_t* mid = alloc.allocate(12800);  // 100 KiB
  EXPECT_EQ(reinterpret_cast<uintptr_t>(mid) % 64, 0u);
  EXPECT_EQ(SmallBlockArena::instance().stats().live_bytes, live);
  alloc.deallocate(mid, 12800);
}

}  // namespace
}  // namespace turbine::kv
