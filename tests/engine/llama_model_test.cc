// LlamaModel on random in-memory f32 weights: results must not depend on the block size, on the
// block ids, on how a prompt is chunked, or on what else is in the batch; bad batches are
// InvalidArgument.
#include "engine/llama_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace turbine::engine {
namespace {

// ModelWeights whose tensors point into buffers owned alongside them.
struct Holder {
  model::ModelWeights w;
  std::vector<std::vector<float>> buffers;
};

model::TensorView randomTensor(Holder& h, const std::string& name, std::vector<int64_t> shape,
                               std::mt19937& rng, float mean, float stddev) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::normal_distribution<float> nd(mean, stddev);
  std::vector<float> data(static_cast<size_t>(n));
  for (auto& x : data) x = nd(rng);
  h.buffers.push_back(std::move(data));
  model::TensorView t;
  t.name = name;
  t.dtype = model::DType::kF32;
  t.shape = std::move(shape);
  t.data = h.buffers.back().data();
  t.nbytes = static_cast<size_t>(n) * 4;
  return t;
}

model::ModelConfig testConfig() {
  model::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  return c;
}

std::shared_ptr<const model::ModelWeights> randomWeights(const model::ModelConfig& c, uint32_t seed,
                                                         bool bias = false) {
  auto h = std::make_shared<Holder>();
  h->buffers.reserve(64);
  std::mt19937 rng(seed);
  const int64_t hs = c.hidden_size, f = c.intermediate_size;
  const int64_t qd = int64_t{c.num_heads} * c.head_dim, kd = int64_t{c.num_kv_heads} * c.head_dim;
  const float s_h = 1.0f / std::sqrt(float(hs)), s_f = 1.0f / std::sqrt(float(f));
  h->w.config = c;
  h->w.config.attention_bias = bias;
  h->w.tok_embeddings = randomTensor(*h, "embed", {c.vocab_size, hs}, rng, 0.0f, 1.0f);
  h->w.final_norm = randomTensor(*h, "norm", {hs}, rng, 1.0f, 0.1f);
  h->w.lm_head = randomTensor(*h, "lm_head", {c.vocab_size, hs}, rng, 0.0f, s_h);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    model::LayerWeights lw;
    lw.attn_norm = randomTensor(*h, "attn_norm", {hs}, rng, 1.0f, 0.1f);
    lw.wq = randomTensor(*h, "wq", {qd, hs}, rng, 0.0f, 2.0f * s_h);
    lw.wk = randomTensor(*h, "wk", {kd, hs}, rng, 0.0f, 2.0f * s_h);
    lw.wv = randomTensor(*h, "wv", {kd, hs}, rng, 0.0f, s_h);
    if (bias) {
      lw.bq = randomTensor(*h, "bq", {qd}, rng, 0.0f, 0.5f);
      lw.bk = randomTensor(*h, "bk", {kd}, rng, 0.0f, 0.5f);
      lw.bv = randomTensor(*h, "bv", {kd}, rng, 0.0f, 0.5f);
    }
    lw.wo = randomTensor(*h, "wo", {hs, qd}, rng, 0.0f, s_h);
    lw.ffn_norm = randomTensor(*h, "ffn_norm", {hs}, rng, 1.0f, 0.1f);
    lw.w_gate = randomTensor(*h, "w_gate", {f, hs}, rng, 0.0f, s_h);
    lw.w_up = randomTensor(*h, "w_up", {f, hs}, rng, 0.0f, s_h);
    lw.w_down = randomTensor(*h, "w_down", {hs, f}, rng, 0.0f, s_f);
    h->w.layers.push_back(std::move(lw));
  }
  return std::shared_ptr<const model::ModelWeights>(h, &h->w);
}

std::unique_ptr<LlamaModel> makeModel(std::shared_ptr<const model::ModelWeights> w,
                                      int32_t block_size, int32_t num_blocks, int threads = 2) {
  LlamaModelOptions o;
  o.threads = threads;
  o.block_size = block_size;
  o.num_blocks = num_blocks;
  auto m = LlamaModel::create(std::move(w), o);
  EXPECT_TRUE(m.isOk()) << m.status().toString();
  return m.isOk() ? std::move(m).value() : nullptr;
}

std::vector<int32_t> randomTokens(int n, uint32_t seed, int vocab = 97) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

// A block table of `n` distinct ids drawn from a shuffled [0, pool).
std::vector<BlockId> scrambledTable(int32_t n, int32_t pool, uint32_t seed) {
  std::vector<BlockId> ids(static_cast<size_t>(pool));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(static_cast<size_t>(n));
  return ids;
}

// Prefills `tokens` in chunks of `chunk`; returns the logits of every chunk's last token,
// keyed by position (other positions left empty).
std::vector<std::vector<float>> prefill(LlamaModel& m, const std::vector<int32_t>& tokens,
                                        size_t chunk, std::span<const BlockId> table) {
  std::vector<std::vector<float>> out(tokens.size());
  for (size_t start = 0; start < tokens.size(); start += chunk) {
    const size_t n = std::min(chunk, tokens.size() - start);
    Batch b;
    b.seqs.push_back(
        {std::span(tokens).subspan(start, n), static_cast<int32_t>(start), table, true});
    std::vector<float> logits(static_cast<size_t>(m.vocabSize()));
    const Status st = m.forward(b, logits);
    EXPECT_TRUE(st.isOk()) << st.toString();
    out[start + n - 1] = std::move(logits);
  }
  return out;
}

double relError(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  if (got.size() != want.size() || want.empty()) return INFINITY;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += double(got[i] - want[i]) * (got[i] - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

TEST(LlamaModelTest, BlockSizeAndBlockIdsDoNotChangeLogits) {
  auto w = randomWeights(testConfig(), 1);
  const std::vector<int32_t> tokens = randomTokens(150, 2);
  std::vector<std::vector<float>> ref;
  for (int32_t bs : {1, 16, 64}) {
    const int32_t need = (150 + bs - 1) / bs;
    auto m = makeModel(w, bs, need + 5);
    ASSERT_TRUE(m);
    const std::vector<BlockId> table = scrambledTable(need, need + 5, 10u + bs);
    auto logits = prefill(*m, tokens, 33, table);
    if (ref.empty()) {
      ref = logits;
      continue;
    }
    for (size_t p = 0; p < tokens.size(); ++p) {
      if (ref[p].empty()) continue;
      EXPECT_LT(relError(logits[p], ref[p]), 1e-5) << "block size " << bs << " position " << p;
    }
  }
}

TEST(LlamaModelTest, ChunkedPrefillEqualsOneChunk) {
  auto w = randomWeights(testConfig(), 3, /*bias=*/true);
  const std::vector<int32_t> tokens = randomTokens(61, 4);
  auto m = makeModel(w, 16, 64);
  ASSERT_TRUE(m);
  const std::vector<BlockId> t1 = scrambledTable(4, 64, 1), t7 = {40, 3, 17, 9},
                             tone = {5, 6, 7, 8};
  const auto whole = prefill(*m, tokens, tokens.size(), t1);
  const auto by7 = prefill(*m, tokens, 7, t7);
  const auto by1 = prefill(*m, tokens, 1, tone);
  EXPECT_LT(relError(by7.back(), whole.back()), 1e-5);
  EXPECT_LT(relError(by1.back(), whole.back()), 1e-5);
  for (size_t p = 6; p < tokens.size(); p += 7) {
    EXPECT_LT(relError(by7[p], by1[p]), 1e-5) << "position " << p;
  }
  // A different prompt must give different logits (the comparison above can fail).
  auto other = tokens;
  other[0] = (other[0] + 1) % 97;
  const auto changed = prefill(*m, other, tokens.size(), t1);
  EXPECT_GT(relError(changed.back(), whole.back()), 1e-3);
}

TEST(LlamaModelTest, MixedBatchEqualsEachAlone) {
  auto w = randomWeights(testConfig(), 5);
  const std::vector<int32_t> a = randomTokens(23, 6), b = randomTokens(18, 7),
                             c = randomTokens(40, 8);
  const std::vector<BlockId> ta = {0, 7}, tb = {3, 9}, tc = {1, 2, 11};
  // Alone: A's chunk [0, 23); B and C prefilled but for their last token, then decoded.
  auto alone = makeModel(w, 16, 12);
  ASSERT_TRUE(alone);
  const auto la = prefill(*alone, a, a.size(), ta).back();
  const auto lb = prefill(*alone, b, b.size(), tb).back();
  const auto lc = prefill(*alone, c, c.size(), tc).back();
  // Together: B and C prefilled without their last token; one step with A + decodes of B, C.
  auto mixed = makeModel(w, 16, 12, 3);
  ASSERT_TRUE(mixed);
  prefill(*mixed, std::vector<int32_t>(b.begin(), b.end() - 1), 5, tb);
  prefill(*mixed, std::vector<int32_t>(c.begin(), c.end() - 1), 64, tc);
  Batch batch;
  batch.seqs.push_back({std::span(b).last(1), static_cast<int32_t>(b.size() - 1), tb, true});
  batch.seqs.push_back({a, 0, ta, true});
  batch.seqs.push_back({std::span(c).last(1), static_cast<int32_t>(c.size() - 1), tc, true});
  const size_t v = static_cast<size_t>(mixed->vocabSize());
  std::vector<float> logits(3 * v);
  ASSERT_TRUE(mixed->forward(batch, logits).isOk());
  auto row = [&](size_t i) {
    return std::vector<float>(logits.begin() + i * v, logits.begin() + (i + 1) * v);
  };
  EXPECT_LT(relError(row(0), lb), 1e-5);
  EXPECT_LT(relError(row(1), la), 1e-5);
  EXPECT_LT(relError(row(2), lc), 1e-5);
  EXPECT_GT(relError(row(0), lc), 1e-2);  // rows are not interchangeable
}

// num_logits = every token of a chunk (prompt logprobs): row j is position j's logits, the ones
// a chunk ending there gives; next to a decode of another sequence in the same step.
TEST(LlamaModelTest, EveryPositionsLogitsInOneChunk) {
  auto w = randomWeights(testConfig(), 12);
  auto m = makeModel(w, 16, 8);
  auto ref = makeModel(w, 16, 8);
  ASSERT_TRUE(m && ref);
  const std::vector<int32_t> a = randomTokens(13, 3), b = randomTokens(6, 4);
  const std::vector<BlockId> ta = {0}, tb = {1};
  const auto want = prefill(*ref, a, 1, ta);  // one position at a time
  const std::vector<int32_t> b_head(b.begin(), b.end() - 1);
  prefill(*m, b_head, b_head.size(), tb);  // b's KV but its last token: decoded below
  Batch batch;
  batch.seqs.push_back({std::span(b).last(1), static_cast<int32_t>(b.size() - 1), tb, 1});
  batch.seqs.push_back({a, 0, ta, static_cast<int32_t>(a.size())});
  EXPECT_EQ(batch.numLogits(), 1 + static_cast<int32_t>(a.size()));
  const auto vocab = static_cast<size_t>(m->vocabSize());
  std::vector<float> logits(batch.numLogits() * vocab);
  ASSERT_TRUE(m->forward(batch, logits).isOk());
  for (size_t p = 0; p < a.size(); ++p) {
    const std::vector<float> row(logits.begin() + (1 + p) * vocab, logits.begin() + (2 + p) * vocab);
    EXPECT_LT(relError(row, want[p]), 1e-5) << "position " << p;
  }
  batch.seqs[1].num_logits = static_cast<int32_t>(a.size()) + 1;  // more rows than tokens
  EXPECT_EQ(m->forward(batch, logits).code(), StatusCode::kInvalidArgument);
}

TEST(LlamaModelTest, OnlyRequestedLogitsAreWritten) {
  auto w = randomWeights(testConfig(), 9);
  auto m = makeModel(w, 16, 8);
  ASSERT_TRUE(m);
  const std::vector<int32_t> a = randomTokens(5, 1), b = randomTokens(4, 2);
  const std::vector<BlockId> ta = {0}, tb = {1};
  Batch batch;
  batch.seqs.push_back({a, 0, ta, false});
  batch.seqs.push_back({b, 0, tb, true});
  EXPECT_EQ(batch.numLogits(), 1);
  std::vector<float> logits(97);
  ASSERT_TRUE(m->forward(batch, logits).isOk());
  auto ref = makeModel(w, 16, 8);
  const auto lb = prefill(*ref, b, 4, tb).back();
  EXPECT_LT(relError(logits, lb), 1e-5);
}

// Chunks of 9 (the last one a 4-token chunk: K/V gathered and converted) and chunks of 1 (decode
// steps: the in-place half-precision decode kernels where the CPU has them).
TEST(LlamaModelTest, HalfPrecisionKvCacheIsClose) {
  auto w = randomWeights(testConfig(), 13);
  const std::vector<int32_t> tokens = randomTokens(40, 14);
  const std::vector<BlockId> table = {2, 0, 1};
  for (size_t chunk : {size_t{9}, size_t{1}}) {
    auto f32 = makeModel(w, 16, 3);
    ASSERT_TRUE(f32);
    EXPECT_EQ(f32->kvCache().dtype(), KvDType::kF32);  // "auto" for f32 weights
    const auto want = prefill(*f32, tokens, chunk, table).back();
    for (KvDType dtype : {KvDType::kF16, KvDType::kBF16}) {
      LlamaModelOptions o;
      o.threads = 2;
      o.num_blocks = 3;
      o.kv_dtype = dtype;
      auto m = LlamaModel::create(w, o);
      ASSERT_TRUE(m.isOk());
      const auto got = prefill(**m, tokens, chunk, table).back();
      const double err = relError(got, want);
      EXPECT_LT(err, dtype == KvDType::kF16 ? 2e-3 : 2e-2)
          << kvDTypeName(dtype) << " chunk " << chunk;
      EXPECT_GT(err, 0.0) << kvDTypeName(dtype) << ": the cache dtype had no effect";
    }
  }
}

TEST(LlamaModelTest, AutoKvDtypeFollowsTheWeights) {
  model::ModelWeights w;
  w.layers.resize(1);
  for (auto [weights, kv] : {std::pair{model::DType::kF32, KvDType::kF32},
                             {model::DType::kBF16, KvDType::kBF16},
                             {model::DType::kF16, KvDType::kF16},
                             {model::DType::kQ8_0, KvDType::kF16}}) {
    w.layers[0].wq.dtype = weights;
    EXPECT_EQ(autoKvDType(w), kv) << model::dtypeName(weights);
  }
}

TEST(LlamaModelTest, BadBatchesAreInvalidArgument) {
  auto w = randomWeights(testConfig(), 11);
  LlamaModelOptions o;
  o.threads = 1;
  o.num_blocks = 4;
  o.max_model_len = 40;
  auto created = LlamaModel::create(w, o);
  ASSERT_TRUE(created.isOk());
  LlamaModel& m = **created;
  const std::vector<int32_t> toks = {1, 2, 3}, bad_tok = {1, 97};
  const std::vector<BlockId> ok_table = {0, 1, 2}, bad_id = {4}, neg_id = {-1};
  std::vector<float> logits(2 * 97);
  auto expectInvalid = [&](Batch b, std::span<float> out) {
    const Status st = m.forward(b, out);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.toString();
  };
  expectInvalid({{{toks, 0, bad_id, true}}}, logits);
  expectInvalid({{{toks, 0, neg_id, true}}}, logits);
  expectInvalid({{{toks, 15, std::span(ok_table).first(1), true}}}, logits);  // table too short
  expectInvalid({{{toks, 38, ok_table, true}}}, logits);                      // past max_model_len
  expectInvalid({{{bad_tok, 0, ok_table, true}}}, logits);
  expectInvalid({{{toks, -1, ok_table, true}}}, logits);
  expectInvalid({{{std::span<const int32_t>(), 0, ok_table, true}}}, logits);
  expectInvalid({{{toks, 0, ok_table, true}, {toks, 1, ok_table, true}}}, logits);  // same slots
  expectInvalid({{{toks, 0, ok_table, true}}}, std::span(logits).first(96));
  EXPECT_TRUE(m.forward({{{toks, 0, ok_table, true}}}, logits).isOk());
}

TEST(LlamaModelTest, RejectsInconsistentWeights) {
  model::ModelConfig c = testConfig();
  auto w = randomWeights(c, 12);
  auto broken = std::make_shared<model::ModelWeights>(*w);
  broken->layers[1].wk.shape = {16, 64};
  auto m = LlamaModel::create(broken, {});
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.status().message().find("wk"), std::string::npos) << m.status().message();
  auto gqa = std::make_shared<model::ModelWeights>(*w);
  gqa->config.num_kv_heads = 3;
  EXPECT_FALSE(LlamaModel::create(gqa, {}).isOk());
}

}  // namespace
}  // namespace turbine::engine
