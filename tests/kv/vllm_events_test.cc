// KV event wire formats: Turbine's own payload round trip, the seq frame, and vLLM's
// KVEventBatch built here in its published msgspec array_like layout.
#define MSGPACK_NO_BOOST 1
#include "kv/vllm_events.h"

#include <gtest/gtest.h>
#include <msgpack.hpp>
#include <xxhash.h>

namespace turbine::kv {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

std::string str(const msgpack::sbuffer& b) { return std::string(b.data(), b.size()); }

TEST(VllmEventsTest, SeqFrameIsBigEndian) {
  const auto f = encodeSeqFrame(0x0102030405060708ull);
  ASSERT_EQ(f.size(), 8u);
  EXPECT_EQ(static_cast<unsigned char>(f[0]), 1);
  EXPECT_EQ(static_cast<unsigned char>(f[7]), 8);
  EXPECT_EQ(*decodeSeqFrame(f), 0x0102030405060708ull);
  EXPECT_EQ(decodeSeqFrame("abc").status().code(), StatusCode::kDataLoss);
}

TEST(VllmEventsTest, TurbinePayloadRoundTrips) {
  KvEventMessage msg{42, 7, {BlockStored{{1, 2, ~0ull}, std::nullopt, Tier::kDevice},
                             BlockStored{{9}, 2ull, Tier::kDisk},
                             BlockRemoved{{1}, Tier::kHost}, AllCleared{}}};
  const auto frames = encodeKvEventFrames(msg);
  EXPECT_EQ(frames.topic, "kv");
  EXPECT_EQ(frames.seq, 7u);
  auto back = decodeKvEventPayload(frames.payload);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, msg);
  EXPECT_FALSE(decodeKvEventPayload(frames.payload.substr(0, frames.payload.size() / 2)).isOk());
  EXPECT_FALSE(decodeKvEventPayload("\x01").isOk());
}

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

TEST(VllmEventsTest, FramesToMessageAndErrors) {
  auto m = decodeVllmFrames({"kv@0", encodeSeqFrame(12), vllmBatch(true, false)}, 5);
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->worker_id, 5u);
  EXPECT_EQ(m->seq, 12u);
  EXPECT_EQ(m->events.size(), 3u);
  EXPECT_FALSE(decodeVllmFrames({"kv", vllmBatch(true, false)}, 5).isOk());
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
}

}  // namespace
}  // namespace turbine::kv
