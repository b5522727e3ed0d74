// Disaggregated serving inside the engine: Engine::exportBlocks copies a prompt's blocks out of
// one engine (the prefill worker's), Request::kv_import hands them to another (the decode
// worker's), whose first admission writes them into its pool instead of computing them. With
// FakeRunner (whose logits depend on the tokens and positions it reads back from its KV slots,
// so a wrong block changes the output) and with the real tiny model.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <string>

#include "engine/engine.h"
#include "engine/engine_test_util.h"
#include "engine/fake_runner.h"
#include "engine/llama_model.h"
#include "kv/block_hash.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

using testing::FakeRunner;
using testing::run;
using testing::RunResult;
using testing::fakeGreedy;
using testing::greedyRequest;
using testing::randomPrompt;

constexpr int32_t kVocab = 89;
constexpr int32_t kBlock = 4;

std::unique_ptr<Engine> fakeEngine(int32_t blocks, FakeRunner** runner, KvTierOptions tiers = {}) {
  return testing::fakeEngine(kVocab, kBlock, blocks, std::move(tiers), runner);
}

Result<KvBlocks> exportSync(Engine& e, std::vector<kv::BlockHash> hashes) {
  std::promise<Result<KvBlocks>> p;
  auto f = p.get_future();
  e.exportBlocks(std::move(hashes), [&p](Result<KvBlocks> r) { p.set_value(std::move(r)); });
  return f.get();
}

std::vector<kv::BlockHash> chainOf(const std::vector<int32_t>& prompt, const std::string& model_id = "fake",
                                   int32_t block = kBlock) {
  return kv::blockHashes(kv::rootHash(model_id, ""), prompt, block);
}

// The prefill side: a prompt run for one token, then its first `n` blocks exported.
KvBlocks prefillAndExport(Engine& e, const std::vector<int32_t>& prompt, size_t n) {
  const RunResult r = run(e, greedyRequest("prefill", prompt, 1));
  EXPECT_TRUE(r.status.isOk()) << r.status.toString();
  auto chain = chainOf(prompt);
  chain.resize(n);
  auto got = exportSync(e, chain);
  EXPECT_TRUE(got.isOk()) << got.status().toString();
  return got.isOk() ? std::move(got).value() : KvBlocks{};
}

TEST(KvTransfer, ExportReturnsTheLeadingRunHeldWithItsBytes) {
  FakeRunner* runner = nullptr;
  auto e = fakeEngine(32, &runner);
  std::mt19937 rng(1);
  const auto a = randomPrompt(rng, 22, kVocab);  // 5 full blocks
  const KvBlocks all = prefillAndExport(*e, a, 5);
  ASSERT_EQ(all.block_bytes, runner->blockBytes());
  ASSERT_EQ(all.hashes, chainOf(a));
  ASSERT_EQ(all.data.size(), 5 * all.block_bytes);
  // The bytes are the runner's blocks: tokens and positions of each slot (FakeRunner's layout).
  const auto* words = reinterpret_cast<const int32_t*>(all.data.data());
  for (int32_t b = 0; b < 5; ++b) {
    for (int32_t i = 0; i < kBlock; ++i) {
      EXPECT_EQ(words[b * 2 * kBlock + i], a[b * kBlock + i]) << b << "," << i;
      EXPECT_EQ(words[b * 2 * kBlock + kBlock + i], b * kBlock + i) << b << "," << i;
    }
  }
  // A hash nobody holds ends the run; one at the front gives nothing.
  auto chain = chainOf(a);
  chain.insert(chain.begin() + 3, kv::BlockHash{12345});
  auto part = exportSync(*e, chain);
  ASSERT_TRUE(part.isOk());
  EXPECT_EQ(part->hashes, std::vector<kv::BlockHash>(chain.begin(), chain.begin() + 3));
  EXPECT_EQ(std::vector<uint8_t>(all.data.begin(), all.data.begin() + 3 * all.block_bytes), part->data);
  auto none = exportSync(*e, {kv::BlockHash{12345}, chain[0]});
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->hashes.empty());
  EXPECT_TRUE(none->data.empty());
  EXPECT_EQ(e->stats().kv_blocks_exported, 8);
}

TEST(KvTransfer, ExportFindsBlocksOffloadedToTheHostTier) {
  FakeRunner* runner = nullptr;
  auto e = fakeEngine(12, &runner, {64 * 2 * sizeof(int32_t) * kBlock, 0, ""});
  std::mt19937 rng(2);
  const auto a = randomPrompt(rng, 21, kVocab);
  const KvBlocks first = prefillAndExport(*e, a, 5);
  ASSERT_EQ(first.hashes.size(), 5u);
  for (int i = 0; i < 4; ++i) run(*e, greedyRequest("f" + std::to_string(i), randomPrompt(rng, 21, kVocab), 2));
  auto again = exportSync(*e, chainOf(a));  // evicted from the pool: from the host tier now
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->hashes, first.hashes);
  EXPECT_EQ(again->data, first.data);
}

TEST(KvTransfer, ImportedBlocksAreNotComputedAndGiveTheSameOutput) {
  FakeRunner* p_runner = nullptr;
  FakeRunner* d_runner = nullptr;
  auto prefill = fakeEngine(32, &p_runner);
  auto decode = fakeEngine(32, &d_runner);
  std::mt19937 rng(3);
  const auto a = randomPrompt(rng, 23, kVocab);  // 5 full blocks, 3 tokens past them
  const auto blocks = std::make_shared<KvBlocks>(prefillAndExport(*prefill, a, 5));
  Request r = greedyRequest("decode", a, 6);
  r.kv_import = blocks;
  const RunResult got = run(*decode, r);
  ASSERT_TRUE(got.status.isOk()) << got.status.toString();
  EXPECT_EQ(got.tokens, fakeGreedy(a, kVocab, 6));
  EXPECT_EQ(got.usage.cached_tokens, 20);
  decode->sync();
  EXPECT_EQ(d_runner->tokens_computed, 3 + 5);  // the prompt's last 3 tokens, then 5 decodes
  EXPECT_EQ(decode->stats().kv_blocks_imported, 5);
  // The blocks are in the decode engine's prefix cache now, as if computed there.
  const int64_t before = d_runner->tokens_computed;
  EXPECT_EQ(run(*decode, greedyRequest("again", a, 6)).usage.cached_tokens, 20);
  decode->sync();
  EXPECT_EQ(d_runner->tokens_computed - before, 3 + 5);
}

TEST(KvTransfer, ImportOfAMiddleRunAfterLocalHitsAndWrongImportsAreComputed) {
  FakeRunner* p_runner = nullptr;
  FakeRunner* d_runner = nullptr;
  auto prefill = fakeEngine(32, &p_runner);
  auto decode = fakeEngine(32, &d_runner);
  std::mt19937 rng(4);
  const auto a = randomPrompt(rng, 29, kVocab);  // 7 full blocks
  const KvBlocks all = prefillAndExport(*prefill, a, 7);
  ASSERT_EQ(all.hashes.size(), 7u);
  // The decode engine holds the first 2 blocks (a shorter prompt with that prefix), imports 2..6.
  const std::vector<int32_t> head(a.begin(), a.begin() + 9);
  run(*decode, greedyRequest("head", head, 1));
  auto tail = std::make_shared<KvBlocks>();
  tail->block_bytes = all.block_bytes;
  tail->hashes.assign(all.hashes.begin() + 2, all.hashes.end());
  tail->data.assign(all.data.begin() + 2 * all.block_bytes, all.data.end());
  decode->sync();
  int64_t before = d_runner->tokens_computed;
  Request r = greedyRequest("tail", a, 4);
  r.kv_import = tail;
  RunResult got = run(*decode, r);
  EXPECT_EQ(got.tokens, fakeGreedy(a, kVocab, 4));
  EXPECT_EQ(got.usage.cached_tokens, 28);
  decode->sync();
  EXPECT_EQ(d_runner->tokens_computed - before, 1 + 3);

  // Imports that do not fit are ignored (counted as skipped) and the prompt is computed.
  const auto b = randomPrompt(rng, 21, kVocab);
  std::vector<std::shared_ptr<KvBlocks>> wrong;
  wrong.push_back(std::make_shared<KvBlocks>(all));  // another prompt's chain
  auto other_size = std::make_shared<KvBlocks>(all);  // another block size
  other_size->block_bytes /= 2;
  other_size->data.resize(other_size->hashes.size() * other_size->block_bytes);
  wrong.push_back(other_size);
  auto bent = std::make_shared<KvBlocks>(prefillAndExport(*prefill, b, 5));  // a gap in the run
  std::swap(bent->hashes[1], bent->hashes[2]);
  wrong.push_back(bent);
  auto short_data = std::make_shared<KvBlocks>(prefillAndExport(*prefill, b, 5));
  short_data->data.pop_back();
  wrong.push_back(short_data);
  for (size_t i = 0; i < wrong.size(); ++i) {
    decode->resetPrefixCache();
    decode->sync();
    before = d_runner->tokens_computed;
    Request w = greedyRequest("wrong" + std::to_string(i), b, 2);
    w.kv_import = wrong[i];
    got = run(*decode, w);
    EXPECT_EQ(got.tokens, fakeGreedy(b, kVocab, 2)) << i;
    EXPECT_EQ(got.usage.cached_tokens, 0) << i;
    decode->sync();
    EXPECT_EQ(d_runner->tokens_computed - before, 21 + 1) << i;
    EXPECT_EQ(decode->stats().kv_blocks_imported, 5) << "no block of a wrong import is written (5 are the tail run's)";
  }
}

TEST(KvTransfer, ExportAfterShutdownIsUnavailable) {
  FakeRunner* runner = nullptr;
  auto e = fakeEngine(8, &runner);
  e->shutdown(Engine::ShutdownMode::kAbort);
  auto r = exportSync(*e, {1, 2});
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST(KvTransfer, TinyModelImportedPrefixGivesTheTokensOfAFullPrefill) {
  const auto weights = testing::tinyWeights(6, "kv_transfer_tiny");
  ASSERT_TRUE(weights);
  const auto engine = [&] {
    LlamaModelOptions lo;
    lo.threads = 2;
    lo.block_size = 16;
    lo.num_blocks = 12;
    lo.max_model_len = 160;
    return testing::tinyEngine(weights, lo, EngineOptions{});
  };
  std::mt19937 rng(10);
  const auto a = randomPrompt(rng, 75, weights->config.vocab_size);  // 4 full blocks
  auto agg = engine();
  const RunResult whole = run(*agg, greedyRequest("agg", a, 8));
  ASSERT_EQ(whole.tokens.size(), 8u);

  auto prefill = engine();
  ASSERT_TRUE(run(*prefill, greedyRequest("p", a, 1)).status.isOk());
  auto blocks = exportSync(*prefill, kv::blockHashes(kv::rootHash("tiny", ""), a, 16));
  ASSERT_TRUE(blocks.isOk());
  ASSERT_EQ(blocks->hashes.size(), 4u);
  auto decode = engine();
  Request r = greedyRequest("d", a, 8);
  r.kv_import = std::make_shared<KvBlocks>(std::move(blocks).value());
  const RunResult got = run(*decode, r);
  EXPECT_EQ(got.usage.cached_tokens, 64);
  EXPECT_EQ(got.tokens, whole.tokens);
  EXPECT_EQ(decode->stats().kv_blocks_imported, 4);
  EXPECT_EQ(decode->stats().prefill_tokens, 75 - 64);
}

}  // namespace
}  // namespace turbine::engine
