// The simulated engine's KV contents (8 bytes a block): they follow the tokens written, move
// between engines (Request::kv_import, as disaggregated serving moves a model's blocks) and to
// the host tier, and a copy into the pool costs the profile's onboard time.
#include "mocker/mock_kv.h"

#include <gtest/gtest.h>

#include <cstring>

#include "kv/block_hash.h"
#include "mocker/mock_engine.h"
#include "mocker/paced_runner.h"

namespace turbine::mocker {
namespace {

engine::Batch oneChunk(const std::vector<int32_t>& tokens, int32_t start, const std::vector<engine::BlockId>& table) {
  engine::Batch b;
  b.seqs.push_back({tokens, start, table, true});
  return b;
}

TEST(MockKvContentsTest, ABlocksValueDependsOnItsTokensOnly) {
  MockKvContents kv(4, 8);
  const std::vector<engine::BlockId> t1{0, 1}, t2{2, 3};
  kv.record(oneChunk({1, 2, 3, 4, 5, 6}, 0, t1));
  kv.record(oneChunk({1, 2, 3, 4}, 0, t2));  // block 2 holds block 0's tokens
  EXPECT_EQ(kv.value(0), kv.value(2));
  EXPECT_NE(kv.value(0), kv.value(1));
  // Written in two chunks (prefill, then decodes) the block ends up the same.
  kv.record(oneChunk({5}, 4, t2));
  kv.record(oneChunk({6}, 5, t2));
  EXPECT_EQ(kv.value(1), kv.value(3));
  kv.record(oneChunk({7}, 5, t2));  // another token at the same slot: another value
  EXPECT_NE(kv.value(1), kv.value(3));
  uint64_t v = 0;
  ASSERT_TRUE(kv.read(1, &v).isOk());
  EXPECT_EQ(v, kv.value(1));
  TimingProfile p;
  p.onboard_us_per_token = 10;
  p.speedup = 2;
  ASSERT_TRUE(kv.write(5, &v, p).isOk());
  EXPECT_EQ(kv.value(5), kv.value(1));
  EXPECT_DOUBLE_EQ(kv.takeCopyUs(), 4 * 10 / 2.0);
  EXPECT_DOUBLE_EQ(kv.takeCopyUs(), 0.0);
  EXPECT_EQ(kv.read(8, &v).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(kv.write(-1, &v, p).code(), StatusCode::kOutOfRange);
}

engine::Request prompt(const std::string& id, int32_t blocks, int32_t token) {
  engine::Request r;
  r.request_id = id;
  r.token_ids.assign(static_cast<size_t>(16 * blocks + 1), token);
  for (size_t i = 0; i < r.token_ids.size(); ++i) r.token_ids[i] = (token + static_cast<int32_t>(i)) % kMockVocab;
  r.sampling.temperature = 0;
  r.stop.max_tokens = 1;
  r.stop.ignore_eos = true;
  return r;
}

// Runs `r` to the end; returns the first step's duration and the last output.
std::pair<double, engine::Output> runAlone(MockEngine& e, engine::Request r) {
  engine::Output last;
  EXPECT_TRUE(e.add(std::move(r), [&](engine::Output&& out) { last = std::move(out); }).isOk());
  double first = -1;
  while (e.hasWork()) {
    auto d = e.step();
    EXPECT_TRUE(d.isOk());
    if (first < 0) first = *d;
  }
  return {first, last};
}

// A prefill engine's blocks, exported and imported by another engine, are prefix hits there: its
// first step computes only the last token, plus the copy of the imported tokens; the imported
// bytes are the exporter's. An import that is not of the prompt's chain is ignored (computed).
TEST(MockKvContentsTest, BlocksMoveBetweenMockEnginesAsImports) {
  MockEngineOptions o;
  o.block_size = 16;
  o.num_blocks = 32;
  o.profile.step_base_us = 1000;
  o.profile.onboard_us_per_token = 50;
  MockEngine prefill(o), decode(o);
  const engine::Request r = prompt("p", 4, 3);
  runAlone(prefill, r);
  const auto chain = kv::blockHashes(kv::rootHash(o.model_id, ""), r.token_ids, o.block_size);
  ASSERT_EQ(chain.size(), 4u);
  const engine::KvBlocks out = prefill.exportBlocks(chain);
  ASSERT_EQ(out.hashes.size(), 4u);
  EXPECT_EQ(out.block_bytes, MockKvContents::kBlockBytes);
  engine::Request leg = r;
  leg.kv_import = std::make_shared<engine::KvBlocks>(out);
  const auto [first, last] = runAlone(decode, leg);
  ASSERT_TRUE(last.usage.has_value());
  EXPECT_EQ(last.usage->cached_tokens, 64);
  EXPECT_NEAR(first, isolatedPrefillUs(o.profile, 64, 1) + 64 * 50.0, 1e-6);
  EXPECT_EQ(decode.scheduler().counters().blocks_imported, 4);
  const engine::KvBlocks back = decode.exportBlocks(chain);
  ASSERT_EQ(back.hashes.size(), 4u);
  EXPECT_EQ(back.data, out.data);  // the bytes the prefill engine computed
  // Another prompt's blocks are not this prompt's: ignored, the prompt is computed.
  MockEngine other(o);
  engine::Request wrong = prompt("w", 4, 9);
  wrong.kv_import = std::make_shared<engine::KvBlocks>(out);
  const auto [wfirst, wlast] = runAlone(other, wrong);
  EXPECT_EQ(wlast.usage->cached_tokens, 0);
  EXPECT_NEAR(wfirst, prefillTimeUs(o.profile, 0, 65), 1e-6);
  EXPECT_EQ(other.scheduler().counters().blocks_import_skipped, 4);
}

// turbine worker --engine mock: the paced runner copies blocks too, and sleeps their copy time in
// the next step.
TEST(MockKvContentsTest, PacedRunnerCopiesBlocksAndPaysForThem) {
  PacedRunnerOptions o;
  o.block_size = 16;
  o.num_blocks = 4;
  o.profile.step_base_us = 100;
  o.profile.onboard_us_per_token = 1000;  // 16 ms a block
  auto made = PacedMockRunner::create(o);
  ASSERT_TRUE(made.isOk());
  auto& runner = **made;
  EXPECT_EQ(runner.blockBytes(), MockKvContents::kBlockBytes);
  std::vector<int32_t> tokens(16, 7);
  const std::vector<engine::BlockId> table{1};
  std::vector<float> logits(static_cast<size_t>(runner.vocabSize()));
  ASSERT_TRUE(runner.forward(oneChunk(tokens, 0, table), logits).isOk());
  const double plain = runner.lastStepUs();
  uint64_t v = 0;
  ASSERT_TRUE(runner.readBlock(1, &v).isOk());
  EXPECT_NE(v, 0u);
  ASSERT_TRUE(runner.writeBlock(2, &v).isOk());
  uint64_t w = 0;
  ASSERT_TRUE(runner.readBlock(2, &w).isOk());
  EXPECT_EQ(w, v);
  const std::vector<int32_t> one{7};
  const std::vector<engine::BlockId> table2{2, 3};
  ASSERT_TRUE(runner.forward(oneChunk(one, 16, table2), logits).isOk());
  EXPECT_NEAR(runner.lastStepUs(), stepTimeUs(o.profile, oneChunk(one, 16, table2)) + 16 * 1000.0, 1e-6);
  EXPECT_GT(runner.lastStepUs(), plain);
  EXPECT_EQ(runner.writeBlock(4, &v).code(), StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace turbine::mocker
