// vLLM's KVEventBatch built here in its published msgspec array_like layout, and its
// translation into Turbine's block hashes against references computed from the tokens.
#define MSGPACK_NO_BOOST 1
#include "kv/vllm_events.h"

#include <gtest/gtest.h>
#include <msgpack.hpp>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>

namespace turbine::kv {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

std::string str(const msgpack::sbuffer& b) { return std::string(b.data(), b.size()); }

// [ts, [events...], dp_rank] with events tagged by class name, as vLLM's msgspec encoder
// writes KVEventBatch (array_like=True, tag=True).
std::string vllmBatch(bool with_medium, bool bytes_hashes) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(3);
  pk.pack(1712345678.25);
  pk.pack_array(3);
  // BlockStored(block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium)
  pk.pack_array(with_medium ? 7 : 6);
  pk.pack(std::string("BlockStored"));
  pk.pack_array(2);
  if (bytes_hashes) {
    pk.pack_bin(4);
    pk.pack_bin_body("abcd", 4);
    pk.pack_bin(4);
    pk.pack_bin_body("efgh", 4);
  } else {
    pk.pack(uint64_t{111});
    pk.pack(int64_t{-5});
  }
  pk.pack_nil();
  pk.pack(std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8});
  pk.pack(4);
  pk.pack_nil();
  if (with_medium) pk.pack(std::string("GPU"));
  // BlockRemoved(block_hashes, medium)
  pk.pack_array(with_medium ? 3 : 2);
  pk.pack(std::string("BlockRemoved"));
  pk.pack_array(1);
  pk.pack(uint64_t{111});
  if (with_medium) pk.pack(std::string("CPU"));
  pk.pack_array(1);
  pk.pack(std::string("AllBlocksCleared"));
  pk.pack(0);
  return str(buf);
}

TEST(VllmEventsTest, DecodesVllmKvEventBatch) {
  auto b = decodeVllmEventBatch(vllmBatch(true, false));
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_DOUBLE_EQ(b->ts, 1712345678.25);
  ASSERT_EQ(b->events.size(), 3u);
  const auto& s = std::get<BlockStored>(b->events[0].event);
  EXPECT_EQ(s.block_hashes, (std::vector<BlockHash>{111, static_cast<BlockHash>(-5)}));
  EXPECT_FALSE(s.parent_hash.has_value());
  EXPECT_EQ(s.tier, Tier::kDevice);
  EXPECT_EQ(b->events[0].token_ids.size(), 8u);
  EXPECT_EQ(b->events[0].block_size, 4);
  EXPECT_EQ(b->events[0].medium, "GPU");
  const auto& r = std::get<BlockRemoved>(b->events[1].event);
  EXPECT_EQ(r.tier, Tier::kHost);
  EXPECT_TRUE(std::holds_alternative<AllCleared>(b->events[2].event));
  EXPECT_EQ(b->data_parallel_rank, 0);
}

TEST(VllmEventsTest, OlderLayoutWithoutMediumAndBytesHashes) {
  auto b = decodeVllmEventBatch(vllmBatch(false, true));
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  const auto& s = std::get<BlockStored>(b->events[0].event);
  EXPECT_EQ(s.block_hashes[0], XXH3_64bits("abcd", 4));
  EXPECT_EQ(s.tier, Tier::kDevice);
  EXPECT_EQ(std::get<BlockRemoved>(b->events[1].event).tier, Tier::kDevice);
}

TEST(VllmEventsTest, MalformedBatchesAreClearErrors) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(2);
  pk.pack(1.0);
  pk.pack_array(1);
  pk.pack_array(1);
  pk.pack(std::string("BlockMoved"));
  auto bad = decodeVllmEventBatch(str(buf));
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("BlockMoved"), std::string::npos);
  EXPECT_FALSE(decodeVllmEventBatch("").isOk());
  const std::string good = vllmBatch(true, false);
  EXPECT_FALSE(decodeVllmEventBatch(good.substr(0, good.size() / 2)).isOk());
}

// Every prefix of a valid batch is an error, and corrupted bytes decode or fail but never read
// out of bounds (run under ASan in the sanitizer build).
TEST(VllmEventsTest, TruncatedAndCorruptedPayloadsNeverCrash) {
  for (bool medium : {true, false}) {
    for (bool bytes : {true, false}) {
      const std::string good = vllmBatch(medium, bytes);
      ASSERT_TRUE(decodeVllmEventBatch(good).isOk());
      for (size_t n = 0; n < good.size(); ++n) {
        auto r = decodeVllmEventBatch(good.substr(0, n));
        ASSERT_FALSE(r.isOk()) << n;
        EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
      }
    }
  }
  std::mt19937_64 rng(5);
  const std::string good = vllmBatch(true, true);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bad = good;
    for (int m = 0; m < 1 + static_cast<int>(rng() % 4); ++m) bad[rng() % bad.size()] = static_cast<char>(rng());
    // Heap copy of exactly its size, so ASan sees a read past the end.
    std::vector<char> exact(bad.begin(), bad.end());
    decoded += decodeVllmEventBatch(std::string_view(exact.data(), exact.size())).isOk();
  }
  EXPECT_LT(decoded, 20000);
  // A header claiming 2^32 - 1 elements is refused before anything is reserved.
  const std::string huge("\x92\xcb\x41\xd9\x80\x00\x00\x00\x00\x00\xdd\xff\xff\xff\xff", 15);
  EXPECT_FALSE(decodeVllmEventBatch(huge).isOk());
  // Newer vLLM fields after the known ones (a map, an ext) are skipped.
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(4);
  pk.pack(2.5);
  pk.pack_array(1);
  pk.pack_array(4);
  pk.pack(std::string("BlockRemoved"));
  pk.pack_array(1);
  pk.pack(uint64_t{7});
  pk.pack(std::string("DISK"));
  pk.pack_map(1);
  pk.pack(std::string("k"));
  pk.pack_array(2);
  pk.pack(1);
  pk.pack(std::string("v"));
  pk.pack_nil();  // data_parallel_rank
  pk.pack_ext(3, 1);
  pk.pack_ext_body("abc", 3);
  auto later = decodeVllmEventBatch(str(buf));
  ASSERT_TRUE(later.isOk()) << later.status().toString();
  EXPECT_EQ(std::get<BlockRemoved>(later->events[0].event), (BlockRemoved{{7}, Tier::kDisk}));
  EXPECT_FALSE(later->data_parallel_rank.has_value());
}

// Integers in every MessagePack width, signed and unsigned, as token ids and hashes.
TEST(VllmEventsTest, IntegersOfEveryWidth) {
  const std::vector<int64_t> values = {0, 5, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL,
                                       -1, -32, -33, -128, -129, -32768, -32769, -2147483648LL, -2147483649LL};
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(2);
  pk.pack(1);  // an integer ts
  pk.pack_array(1);
  pk.pack_array(5);
  pk.pack(std::string("BlockStored"));
  pk.pack_array(static_cast<uint32_t>(values.size()));
  for (int64_t v : values) pk.pack(v);
  pk.pack_nil();
  pk.pack_array(static_cast<uint32_t>(values.size()));
  for (int64_t v : values) pk.pack(v);
  pk.pack(1);
  auto b = decodeVllmEventBatch(str(buf));
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(b->ts, 1.0);
  const auto& s = std::get<BlockStored>(b->events[0].event);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(s.block_hashes[i], static_cast<BlockHash>(values[i])) << values[i];
    EXPECT_EQ(b->events[0].token_ids[i], static_cast<int32_t>(values[i])) << values[i];
  }
}

// --- VllmBlockTranslator ---

constexpr int32_t kB = 4;  // Turbine block size in these tests

VllmEvent stored(std::vector<BlockHash> vllm_hashes, std::optional<BlockHash> parent,
                 std::vector<int32_t> tokens, int32_t block_size, Tier tier = Tier::kDevice) {
  VllmEvent e;
  e.event = BlockStored{std::move(vllm_hashes), parent, tier};
  e.token_ids = std::move(tokens);
  e.block_size = block_size;
  return e;
}

VllmEvent removed(std::vector<BlockHash> vllm_hashes, Tier tier = Tier::kDevice) {
  VllmEvent e;
  e.event = BlockRemoved{std::move(vllm_hashes), tier};
  return e;
}

VllmEventBatch batch(std::vector<VllmEvent> events) {
  VllmEventBatch b;
  b.events = std::move(events);
  return b;
}

std::vector<int32_t> iota(int n, int from = 100) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = from + i * 7;
  return t;
}

std::vector<int32_t> slice(const std::vector<int32_t>& t, size_t from, size_t n) {
  return {t.begin() + static_cast<std::ptrdiff_t>(from), t.begin() + static_cast<std::ptrdiff_t>(from + n)};
}

TEST(VllmBlockTranslatorTest, StoredBlocksGetTheHashesOfTheRequestsTokens) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(5 * kB);
  const auto expect = blockHashes(root, tokens, kB);
  VllmBlockTranslator tr(root, kB);
  // vLLM's own names: anything but Turbine's.
  auto m1 = tr.translate(batch({stored({901, 902, 903}, std::nullopt, slice(tokens, 0, 3 * kB), kB)}), 7, 3);
  auto m2 = tr.translate(batch({stored({904, 905}, 903, slice(tokens, 3 * kB, 2 * kB), kB)}), 7, 4);
  EXPECT_EQ(m1.worker_id, 7u);
  EXPECT_EQ(m1.seq, 3u);
  ASSERT_EQ(m1.events.size(), 1u);
  ASSERT_EQ(m2.events.size(), 1u);
  const auto& s1 = std::get<BlockStored>(m1.events[0]);
  const auto& s2 = std::get<BlockStored>(m2.events[0]);
  EXPECT_EQ(s1.block_hashes, std::vector<BlockHash>(expect.begin(), expect.begin() + 3));
  EXPECT_FALSE(s1.parent_hash.has_value());
  EXPECT_EQ(s2.block_hashes, std::vector<BlockHash>(expect.begin() + 3, expect.end()));
  EXPECT_EQ(s2.parent_hash, expect[2]);
  EXPECT_EQ(tr.size(), 5u);
  // Removal by vLLM's names.
  auto m3 = tr.translate(batch({removed({905, 904, 42})}), 7, 5);
  ASSERT_EQ(m3.events.size(), 1u);
  EXPECT_EQ(std::get<BlockRemoved>(m3.events[0]).block_hashes, (std::vector<BlockHash>{expect[4], expect[3]}));
  EXPECT_EQ(tr.stats().unknown_removed, 1u);
  EXPECT_EQ(tr.stats().blocks_stored, 5u);
  EXPECT_EQ(tr.size(), 3u);
}

TEST(VllmBlockTranslatorTest, ALargerVllmBlockBecomesSeveralTurbineBlocks) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(6 * kB);
  const auto expect = blockHashes(root, tokens, kB);
  VllmBlockTranslator tr(root, kB);
  auto m = tr.translate(batch({stored({1, 2}, std::nullopt, slice(tokens, 0, 4 * kB), 2 * kB),
                               stored({3}, 2, slice(tokens, 4 * kB, 2 * kB), 2 * kB),
                               removed({2})}), 1, 0);
  ASSERT_EQ(m.events.size(), 3u);
  EXPECT_EQ(std::get<BlockStored>(m.events[0]).block_hashes, std::vector<BlockHash>(expect.begin(), expect.begin() + 4));
  EXPECT_EQ(std::get<BlockStored>(m.events[1]).block_hashes, (std::vector<BlockHash>{expect[4], expect[5]}));
  EXPECT_EQ(std::get<BlockStored>(m.events[1]).parent_hash, expect[3]);
  EXPECT_EQ(std::get<BlockRemoved>(m.events[2]).block_hashes, (std::vector<BlockHash>{expect[2], expect[3]}));
}

TEST(VllmBlockTranslatorTest, UntranslatableStoresAreDroppedAndCounted) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(4 * kB);
  VllmBlockTranslator tr(root, kB);
  VllmEvent lora = stored({20}, std::nullopt, slice(tokens, 0, kB), kB);
  lora.lora_id = 3;
  auto m = tr.translate(batch({stored({10}, 999, slice(tokens, 0, kB), kB),             // parent unknown
                               stored({11, 12}, std::nullopt, slice(tokens, 0, kB), kB),  // too few tokens
                               stored({13}, std::nullopt, slice(tokens, 0, 6), 6),       // 6 % 4 != 0
                               lora,
                               stored({21}, 20, slice(tokens, kB, kB), kB)}),           // child of a dropped block
                        1, 0);
  EXPECT_TRUE(m.events.empty());
  EXPECT_EQ(tr.stats().blocks_dropped, 6u);
  EXPECT_EQ(tr.stats().blocks_stored, 0u);
  EXPECT_EQ(tr.size(), 0u);
}

TEST(VllmBlockTranslatorTest, AHashOnSeveralTiersStaysUntilRemovedFromAll) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(kB);
  const BlockHash h = blockHashes(root, tokens, kB)[0];
  VllmBlockTranslator tr(root, kB);
  tr.translate(batch({stored({5}, std::nullopt, tokens, kB, Tier::kDevice),
                      stored({5}, std::nullopt, tokens, kB, Tier::kHost)}), 1, 0);
  auto gpu = tr.translate(batch({removed({5}, Tier::kDevice)}), 1, 1);
  ASSERT_EQ(gpu.events.size(), 1u);
  EXPECT_EQ(std::get<BlockRemoved>(gpu.events[0]), (BlockRemoved{{h}, Tier::kDevice}));
  EXPECT_EQ(tr.size(), 1u);
  // A child stored while the host copy remains still finds its parent.
  auto child = tr.translate(batch({stored({6}, 5, iota(kB, 7), kB, Tier::kHost)}), 1, 2);
  ASSERT_EQ(child.events.size(), 1u);
  EXPECT_EQ(std::get<BlockStored>(child.events[0]).parent_hash, h);
  auto cpu = tr.translate(batch({removed({5}, Tier::kHost)}), 1, 3);
  EXPECT_EQ(std::get<BlockRemoved>(cpu.events[0]), (BlockRemoved{{h}, Tier::kHost}));
  EXPECT_EQ(tr.size(), 1u);  // the child
  EXPECT_TRUE(tr.translate(batch({removed({5}, Tier::kHost)}), 1, 4).events.empty());
  EXPECT_EQ(tr.stats().unknown_removed, 1u);
}

TEST(VllmBlockTranslatorTest, ClearForgetsTheMapAndPassesOn) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(2 * kB);
  VllmBlockTranslator tr(root, kB);
  tr.translate(batch({stored({1}, std::nullopt, slice(tokens, 0, kB), kB)}), 1, 0);
  VllmEvent clear;
  clear.event = AllCleared{};
  auto m = tr.translate(batch({clear, stored({2}, 1, slice(tokens, kB, kB), kB)}), 1, 1);
  ASSERT_EQ(m.events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<AllCleared>(m.events[0]));
  EXPECT_EQ(tr.size(), 0u);
  EXPECT_EQ(tr.stats().blocks_dropped, 1u);
}

// SGLang's default: pages of 1 token, one event per page chained by parent. Every kB-th page
// completes a Turbine block (the router's hash of those tokens); a branch completes its own; the
// block goes when the page that completed it goes.
TEST(VllmBlockTranslatorTest, OneTokenPagesAreMergedIntoBlocks) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(2 * kB + 2);
  const auto expect = blockHashes(root, tokens, kB);  // 2 whole blocks
  VllmBlockTranslator tr(root, kB);
  std::vector<BlockStored> got;
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto m = tr.translate(batch({stored({500 + i}, i == 0 ? std::nullopt : std::optional<BlockHash>(499 + i),
                                        {tokens[i]}, 1)}),
                          1, i);
    EXPECT_EQ(m.events.size(), (i + 1) % kB == 0 ? 1u : 0u) << "page " << i;
    for (const auto& e : m.events) got.push_back(std::get<BlockStored>(e));
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (BlockStored{{expect[0]}, std::nullopt, Tier::kDevice}));
  EXPECT_EQ(got[1], (BlockStored{{expect[1]}, expect[0], Tier::kDevice}));
  EXPECT_EQ(tr.size(), tokens.size());
  EXPECT_EQ(tr.stats().blocks_stored, tokens.size());
  // A branch after token 5 (two pages in one event): its second block is its own.
  auto branch = tokens;
  branch[6] = 9001;
  branch[7] = 9002;
  auto b = tr.translate(batch({stored({700, 701}, 505, {9001, 9002}, 1)}), 1, 20);
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(std::get<BlockStored>(b.events[0]),
            (BlockStored{{blockHashes(root, branch, kB)[1]}, expect[0], Tier::kDevice}));
  // Evicted from the leaves: only the pages that completed a block remove one.
  auto r = tr.translate(batch({removed({509, 508, 507, 701, 700})}), 1, 21);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(std::get<BlockRemoved>(r.events[0]).block_hashes,
            (std::vector<BlockHash>{expect[1], blockHashes(root, branch, kB)[1]}));
  EXPECT_EQ(tr.size(), 7u);
  EXPECT_EQ(tr.stats().unknown_removed, 0u);
}

// Pages that do not divide the block (3 tokens, blocks of 4): a block may take the end of one
// page and the start of the next, and one event may complete several.
TEST(VllmBlockTranslatorTest, PagesThatDoNotDivideTheBlock) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(4 * 3 + 2 * 3);
  const auto expect = blockHashes(root, tokens, kB);  // 4 whole blocks of 18 tokens
  VllmBlockTranslator tr(root, kB);
  auto m1 = tr.translate(batch({stored({1, 2, 3, 4}, std::nullopt, slice(tokens, 0, 12), 3)}), 1, 0);
  auto m2 = tr.translate(batch({stored({5, 6}, 4, slice(tokens, 12, 6), 3)}), 1, 1);
  std::vector<BlockHash> all;
  for (const auto* m : {&m1, &m2}) {
    for (const auto& e : m->events) {
      const auto& st = std::get<BlockStored>(e);
      ASSERT_EQ(st.block_hashes.size(), 1u);
      EXPECT_EQ(st.parent_hash, all.empty() ? std::nullopt : std::optional<BlockHash>(all.back()));
      all.push_back(st.block_hashes[0]);
    }
  }
  EXPECT_EQ(m1.events.size(), 3u);  // tokens 0-3, 4-7, 8-11
  EXPECT_EQ(all, expect);
}

TEST(VllmBlockTranslatorTest, PagesOnSeveralTiersAndUnknownParents) {
  const BlockHash root = rootHash("m", "");
  const auto tokens = iota(kB);
  const BlockHash h = blockHashes(root, tokens, kB)[0];
  VllmBlockTranslator tr(root, kB);
  // Two pages of 2 tokens; the second, which completes the block, is also stored on the host.
  tr.translate(batch({stored({1, 2}, std::nullopt, tokens, 2)}), 1, 0);
  auto host = tr.translate(batch({stored({2}, 1, slice(tokens, 2, 2), 2, Tier::kHost)}), 1, 1);
  ASSERT_EQ(host.events.size(), 1u);
  EXPECT_EQ(std::get<BlockStored>(host.events[0]), (BlockStored{{h}, std::nullopt, Tier::kHost}));
  auto gpu = tr.translate(batch({removed({2}, Tier::kDevice)}), 1, 2);
  EXPECT_EQ(std::get<BlockRemoved>(gpu.events[0]), (BlockRemoved{{h}, Tier::kDevice}));
  EXPECT_EQ(tr.size(), 2u);  // page 2 is still on the host
  // A page whose parent is unknown (stored before the translator started) is dropped with the
  // rest of its event, and so are its children.
  auto lost = tr.translate(batch({stored({30, 31}, 29, {1, 2}, 1), stored({32}, 31, {3}, 1)}), 1, 3);
  EXPECT_TRUE(lost.events.empty());
  EXPECT_EQ(tr.stats().blocks_dropped, 3u);
  // A clear forgets the pages.
  VllmEvent clear;
  clear.event = AllCleared{};
  tr.translate(batch({clear}), 1, 4);
  EXPECT_EQ(tr.size(), 0u);
}

// Many blocks held at once (the map grows, and erases shift probe runs back), stored and
// removed in random order, one and two Turbine blocks per vLLM block: every removal must give
// back exactly the blocks its store gave.
TEST(VllmBlockTranslatorTest, ManyBlocksStoredAndRemovedInRandomOrder) {
  for (int32_t vllm_bs : {kB, 2 * kB}) {
    std::mt19937_64 rng(99 + static_cast<uint64_t>(vllm_bs));
    VllmBlockTranslator tr(rootHash("m", ""), kB);
    std::unordered_map<BlockHash, std::vector<BlockHash>> ref;  // vLLM hash -> its blocks
    std::vector<BlockHash> live;
    uint64_t seq = 0;
    for (int round = 0; round < 60000; ++round) {
      if (live.empty() || rng() % 100 < (round < 20000 ? 90u : 50u)) {
        const BlockHash h = rng() % 4 == 0 ? rng() % 64 : rng();  // small ints too, as Python's hash gives
        if (ref.count(h)) continue;
        std::vector<int32_t> toks(static_cast<size_t>(vllm_bs));
        for (auto& t : toks) t = static_cast<int32_t>(rng() % 32000);
        auto m = tr.translate(batch({stored({h}, std::nullopt, toks, vllm_bs)}), 1, seq++);
        ASSERT_EQ(m.events.size(), 1u);
        const auto& blocks = std::get<BlockStored>(m.events[0]).block_hashes;
        ASSERT_EQ(blocks, blockHashes(rootHash("m", ""), toks, kB)) << round;
        ref[h] = blocks;
        live.push_back(h);
      } else {
        const size_t at = rng() % live.size();
        const BlockHash h = live[at];
        live[at] = live.back();
        live.pop_back();
        auto m = tr.translate(batch({removed({h})}), 1, seq++);
        ASSERT_EQ(m.events.size(), 1u) << round;
        ASSERT_EQ(std::get<BlockRemoved>(m.events[0]).block_hashes, ref[h]) << round;
        ref.erase(h);
      }
      ASSERT_EQ(tr.size(), ref.size());
    }
    EXPECT_GT(ref.size(), 4000u);  // the table grew well past its first size
    // Everything still held is still found, by its vLLM name.
    std::vector<BlockHash> all(live.begin(), live.end());
    auto m = tr.translate(batch({removed(all)}), 1, seq++);
    size_t n = 0;
    for (BlockHash h : live) n += ref[h].size();
    EXPECT_EQ(std::get<BlockRemoved>(m.events[0]).block_hashes.size(), n);
    EXPECT_EQ(tr.size(), 0u);
    EXPECT_EQ(tr.stats().unknown_removed, 0u);
  }
}

// A vLLM-like worker: sequences share prefixes (drawn from a few stems), the cache stores the
// blocks a request computes and evicts leaves (vLLM evicts a block only once nothing newer
// hangs from it), on two tiers. vLLM's hashes are its own function of (parent, tokens). Every
// translated message is applied to a KvBlockSet, which must equal the set of Turbine hashes of
// the blocks vLLM holds, computed from their tokens directly.
TEST(VllmBlockTranslatorTest, RandomStreamsMatchTheTokensReference) {
  for (int32_t vllm_bs : {kB, 2 * kB}) {
    std::mt19937_64 rng(static_cast<uint64_t>(vllm_bs) * 1000 + 17);
    const BlockHash root = rootHash("model-x", "");
    VllmBlockTranslator tr(root, kB);
    auto vllm_hash = [](BlockHash parent, std::span<const int32_t> t) {
      return XXH3_64bits_withSeed(t.data(), t.size() * 4, parent ^ 0x5bd1e995ull) | 1ull << 63;
    };
    struct Held { std::vector<int32_t> tokens; int children = 0; BlockHash parent = 0; std::array<bool, 2> on{}; };
    std::unordered_map<BlockHash, Held> vllm;  // vLLM's cache: its hash -> prefix tokens
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 4; ++i) stems.push_back(iota(vllm_bs * 3, 1000 * i));
    KvBlockSet set;
    uint64_t seq = 0;
    for (int round = 0; round < 400; ++round) {
      VllmEventBatch b;
      // A request: a stem, then random tokens, stored block by block where not held.
      std::vector<int32_t> tokens = stems[rng() % stems.size()];
      tokens.resize(static_cast<size_t>(vllm_bs) * (1 + rng() % 3));
      const int extra = static_cast<int>(rng() % 4) * vllm_bs;
      for (int i = 0; i < extra; ++i) tokens.push_back(static_cast<int32_t>(rng() % 50000));
      const Tier tier = rng() % 4 == 0 ? Tier::kHost : Tier::kDevice;
      const int t = tier == Tier::kHost ? 1 : 0;
      BlockHash parent = 0;
      bool has_parent = false;
      VllmEvent e;
      BlockStored s{{}, std::nullopt, tier};
      for (size_t i = 0; i + vllm_bs <= tokens.size(); i += static_cast<size_t>(vllm_bs)) {
        std::span<const int32_t> blk(tokens.data() + i, static_cast<size_t>(vllm_bs));
        const BlockHash h = vllm_hash(has_parent ? parent : 0, blk);
        Held& held = vllm[h];
        if (held.tokens.empty()) {
          held.tokens.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(i) + vllm_bs);
          held.parent = has_parent ? parent : 0;
          if (has_parent) ++vllm[parent].children;
        }
        if (!held.on[t]) {
          held.on[t] = true;
          if (s.block_hashes.empty()) s.parent_hash = has_parent ? std::optional<BlockHash>(parent) : std::nullopt;
          s.block_hashes.push_back(h);
          e.token_ids.insert(e.token_ids.end(), blk.begin(), blk.end());
        } else if (!s.block_hashes.empty()) {
          // vLLM's events are runs of new blocks: close this one.
          e.event = s;
          e.block_size = vllm_bs;
          b.events.push_back(e);
          e = VllmEvent{};
          s = BlockStored{{}, std::nullopt, tier};
        }
        parent = h;
        has_parent = true;
      }
      if (!s.block_hashes.empty()) {
        e.event = s;
        e.block_size = vllm_bs;
        b.events.push_back(e);
      }
      // Evict a few leaves of a tier.
      for (int ev = 0; ev < 2; ++ev) {
        const int et = static_cast<int>(rng() % 2);
        std::vector<BlockHash> leaves;
        for (auto& [h, held] : vllm)
          if (held.on[et] && held.children == 0) leaves.push_back(h);
        if (leaves.empty()) continue;
        std::sort(leaves.begin(), leaves.end());
        const BlockHash h = leaves[rng() % leaves.size()];
        b.events.push_back(removed({h}, et == 1 ? Tier::kHost : Tier::kDevice));
        Held& held = vllm[h];
        held.on[et] = false;
        if (!held.on[0] && !held.on[1]) {
          if (held.parent) --vllm[held.parent].children;
          vllm.erase(h);
        }
      }
      if (round == 200) {
        VllmEvent c;
        c.event = AllCleared{};
        b.events.push_back(c);
        vllm.clear();
      }
      ASSERT_TRUE(set.apply(tr.translate(b, 3, seq++)).isOk());
      for (int tt = 0; tt < 2; ++tt) {
        std::unordered_set<BlockHash> ref;
        for (const auto& [h, held] : vllm) {
          if (!held.on[tt]) continue;
          const auto hs = blockHashes(root, held.tokens, kB);
          for (int j = 0; j < vllm_bs / kB; ++j) ref.insert(hs[hs.size() - 1 - static_cast<size_t>(j)]);
        }
        ASSERT_EQ(set.hashes(tt == 1 ? Tier::kHost : Tier::kDevice), ref) << "round " << round << " tier " << tt << " vllm block " << vllm_bs;
      }
    }
    EXPECT_EQ(tr.stats().blocks_dropped, 0u);
    EXPECT_EQ(tr.stats().unknown_removed, 0u);
    EXPECT_GT(tr.stats().blocks_stored, 400u);
  }
}

}  // namespace
}  // namespace turbine::kv
