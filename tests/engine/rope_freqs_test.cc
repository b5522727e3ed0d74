// Llama 3.1 rope scaling in its two real encodings gives the same model:
//   - Hugging Face: config.json `rope_scaling: {rope_type: llama3, factor, low_freq_factor,
//     high_freq_factor, original_max_position_embeddings}`;
//   - GGUF (llama.cpp's converter): the rule precomputed as per-frequency divisors in the tensor
//     `rope_freqs.weight`.
// A tiny HF folder gets the llama3 config; the GGUF of the same weights is rewritten with a
// rope_freqs tensor computed here from the rule's definition. Both must give identical greedy
// tokens over a prompt long enough for the scaled frequencies to matter, and differ from the
// unscaled model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/llama_model.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

namespace fs = std::filesystem;

constexpr double kFactor = 8.0, kLow = 1.0, kHigh = 4.0, kOrigCtx = 64.0;

// The llama3 rule applied to one inverse frequency (as in Meta's reference code).
double llama3(double inv) {
  const double wavelen = 2.0 * std::numbers::pi / inv;
  if (wavelen < kOrigCtx / kHigh) return inv;
  if (wavelen > kOrigCtx / kLow) return inv / kFactor;
  const double smooth = (kOrigCtx / wavelen - kLow) / (kHigh - kLow);
  return (1.0 - smooth) * inv / kFactor + smooth * inv;
}

class RopeFreqsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("turbine_rope_freqs_" + std::to_string(::getpid()));
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string make(const std::string& format) {
    model::MakeModelOptions o;
    o.preset = "tiny";
    o.format = format;
    o.seed = 3;
    o.tokenizer_corpus_bytes = 64 << 10;
    o.out = (root_ / (format == "gguf" ? "base.gguf" : "hf")).string();
    EXPECT_TRUE(model::makeModel(o).isOk());
    return o.out;
  }

  std::unique_ptr<LlamaModel> runner(const std::string& path) {
    auto w = model::loadModel(path);
    EXPECT_TRUE(w.isOk()) << w.status().toString();
    if (!w.isOk()) return nullptr;
    LlamaModelOptions o;
    o.threads = 2;
    o.num_blocks = 64;
    o.max_model_len = 512;
    auto m = LlamaModel::create(std::make_shared<const model::ModelWeights>(std::move(*w)), o);
    EXPECT_TRUE(m.isOk()) << m.status().toString();
    return m.isOk() ? std::move(m).value() : nullptr;
  }

  fs::path root_;
};

std::vector<int32_t> greedy(LlamaModel& m, const std::vector<int32_t>& prompt, int steps) {
  std::vector<int32_t> tokens = prompt, out;
  std::vector<BlockId> table(static_cast<size_t>(m.numBlocks()));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<BlockId>(i);
  std::vector<float> logits(static_cast<size_t>(m.vocabSize()));
  int32_t done = 0;
  for (int s = 0; s < steps; ++s) {
    Batch b;
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(tokens).subspan(static_cast<size_t>(done));
    c.start_pos = done;
    c.block_table = table;
    b.seqs.push_back(c);
    EXPECT_TRUE(m.forward(b, logits).isOk());
    done = static_cast<int32_t>(tokens.size());
    int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(best);
    tokens.push_back(best);
  }
  return out;
}

// Copies a GGUF file, adding the tensor rope_freqs.weight = `factors`.
void addRopeFreqs(const std::string& in, const std::string& out, const std::vector<float>& factors) {
  auto src = model::GgufFile::open(in);
  ASSERT_TRUE(src.isOk()) << src.status().toString();
  model::GgufWriter w;
  for (const std::string& key : src->keys()) {
    if (key == "general.alignment") continue;
    w.add(key, *src->find(key));
  }
  for (const auto& t : src->tensors()) {
    w.addTensor(t.name, t.ne, static_cast<model::GgmlType>(t.ggml_type));
  }
  w.addTensor("rope_freqs.weight", {static_cast<int64_t>(factors.size())}, model::GgmlType::kF32);
  ASSERT_TRUE(w.open(out).isOk());
  for (const auto& t : src->tensors()) {
    ASSERT_TRUE(w.writeTensorData({t.data, t.nbytes}).isOk());
  }
  ASSERT_TRUE(w.writeTensorData({reinterpret_cast<const uint8_t*>(factors.data()),
                                 factors.size() * sizeof(float)}).isOk());
  ASSERT_TRUE(w.close().isOk());
}

TEST_F(RopeFreqsTest, HfLlama3ConfigEqualsGgufRopeFreqsTensor) {
  const std::string hf = make("hf");
  const std::string gguf = make("gguf");
  auto plain = runner(hf);
  ASSERT_TRUE(plain);
  const model::ModelConfig cfg = plain->config();

  // HF: add rope_scaling to config.json.
  const std::string hf3 = (root_ / "hf-llama3").string();
  fs::copy(hf, hf3);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(fs::path(hf3) / "config.json"));
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", kFactor}, {"low_freq_factor", kLow},
                       {"high_freq_factor", kHigh},
                       {"original_max_position_embeddings", static_cast<int>(kOrigCtx)}};
  std::ofstream(fs::path(hf3) / "config.json") << j.dump(2);

  // GGUF: divisors base / scaled, as llama.cpp's converter writes them.
  std::vector<float> factors;
  for (int i = 0; i < cfg.head_dim / 2; ++i) {
    double inv = std::pow(static_cast<double>(cfg.rope_theta), -2.0 * i / cfg.head_dim);
    factors.push_back(static_cast<float>(inv / llama3(inv)));
  }
  ASSERT_GT(*std::max_element(factors.begin(), factors.end()), 1.5f);  // the rule bites
  const std::string gguf3 = (root_ / "llama3.gguf").string();
  addRopeFreqs(gguf, gguf3, factors);

  auto a = runner(hf3);
  auto b = runner(gguf3);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->config().rope_scaling.type, model::RopeScaling::Type::kLlama3);
  EXPECT_EQ(b->config().rope_scaling.freq_factors.size(), factors.size());

  std::vector<int32_t> prompt;
  for (int i = 0; i < 200; ++i) prompt.push_back((i * 37 + 11) % (cfg.vocab_size - 300) + 256);
  const auto ta = greedy(*a, prompt, 24), tb = greedy(*b, prompt, 24), tp = greedy(*plain, prompt, 24);
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tp) << "llama3 scaling made no difference: the test would not catch a bug";
}

TEST_F(RopeFreqsTest, WrongNumberOfFactorsIsAClearError) {
  const std::string gguf = make("gguf");
  const std::string bad = (root_ / "bad.gguf").string();
  addRopeFreqs(gguf, bad, std::vector<float>(3, 1.0f));
  auto w = model::loadModel(bad);
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  LlamaModelOptions o;
  o.num_blocks = 8;
  auto m = LlamaModel::create(std::make_shared<const model::ModelWeights>(std::move(*w)), o);
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.status().message().find("rope_freqs"), std::string::npos) << m.status().message();
}

}  // namespace
}  // namespace turbine::engine
