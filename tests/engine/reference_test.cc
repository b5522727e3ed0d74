// LlamaModel on generated model files (makeModel) against an independent implementation:
//   - tiny and small HF f32 folders vs the NumPy float64 forward pass of
//     tests/model/reference_forward.py (rel. error < 1e-3 at every position);
//   - HF and GGUF files of the same weights give identical greedy tokens for 64 steps (this
//     checks the q/k row permutation against RopeStyle::kInterleaved);
//   - f16 / bf16 / q8_0 files give finite logits close to the f32 ones along the same tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/llama_model.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

namespace fs = std::filesystem;

const char* kPython = "/usr/bin/python3";

// A fresh directory for this test binary's models, removed at exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("turbine_fwd_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path path() const { return path_; }

 private:
  fs::path path_;
};

TempDir& tempDir() {
  static TempDir dir;
  return dir;
}

// Writes (once per process) a model and returns its path.
std::string makeTestModel(const std::string& preset, const std::string& format,
                          const std::string& dtype, uint64_t seed) {
  const std::string name = preset + "-" + format + "-" + dtype + "-" + std::to_string(seed);
  const fs::path out = tempDir().path() / name;
  if (fs::exists(out)) return out.string();
  model::MakeModelOptions o;
  o.preset = preset;
  o.format = format;
  o.dtype = dtype;
  o.seed = seed;
  o.out = out.string();
  o.tokenizer_corpus_bytes = 64 << 10;
  const Status st = model::makeModel(o);
  EXPECT_TRUE(st.isOk()) << st.toString();
  return out.string();
}

std::unique_ptr<LlamaModel> loadRunner(const std::string& path, int threads = 2) {
  auto w = model::loadModel(path);
  EXPECT_TRUE(w.isOk()) << w.status().toString();
  if (!w.isOk()) return nullptr;
  LlamaModelOptions o;
  o.threads = threads;
  o.num_blocks = 64;
  o.max_model_len = 512;
  auto m = LlamaModel::create(std::make_shared<model::ModelWeights>(std::move(w).value()), o);
  EXPECT_TRUE(m.isOk()) << m.status().toString();
  return m.isOk() ? std::move(m).value() : nullptr;
}

// One sequence on a runner: blocks taken from the end of the pool, in reverse order.
class Sequence {
 public:
  explicit Sequence(LlamaModel& m) : m_(m) {
    for (int32_t b = m.numBlocks() - 1; b >= 0; --b) table_.push_back(b);
  }
  // Computes `tokens` in chunks of `chunk`; returns the logits of the last one.
  std::vector<float> feed(const std::vector<int32_t>& tokens, size_t chunk) {
    std::vector<float> logits(static_cast<size_t>(m_.vocabSize()));
    for (size_t s = 0; s < tokens.size(); s += chunk) {
      const size_t n = std::min(chunk, tokens.size() - s);
      Batch b;
      b.seqs.push_back({std::span(tokens).subspan(s, n), pos_, table_, true});
      const Status st = m_.forward(b, logits);
      EXPECT_TRUE(st.isOk()) << st.toString();
      pos_ += static_cast<int32_t>(n);
    }
    return logits;
  }

 private:
  LlamaModel& m_;
  std::vector<BlockId> table_;
  int32_t pos_ = 0;
};

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Reads a float32 C-order .npy file with a 2-D shape.
bool readNpy(const std::string& path, std::vector<float>& data, int64_t& rows, int64_t& cols) {
  std::ifstream f(path, std::ios::binary);
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) return false;
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h16;
    f.read(reinterpret_cast<char*>(&h16), 2);
    hlen = h16;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  f.read(header.data(), hlen);
  if (header.find("'<f4'") == std::string::npos || header.find("True") != std::string::npos)
    return false;
  const size_t lp = header.find('(');
  if (lp == std::string::npos || std::sscanf(header.c_str() + lp, "(%ld, %ld)", &rows, &cols) != 2)
    return false;
  data.resize(static_cast<size_t>(rows * cols));
  return static_cast<bool>(
      f.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * 4)));
}

bool havePythonNumpy() {
  return std::system((std::string(kPython) + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0;
}

double relError(const float* got, const float* want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += double(got[i] - want[i]) * (got[i] - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

std::vector<int32_t> randomPrompt(int n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

// The tiny model as a MistralForCausalLM with a sliding window of `window` tokens.
std::string makeSlidingWindowModel(int window) {
  const fs::path src = makeTestModel("tiny", "hf", "f32", 3);
  const fs::path out = tempDir().path() / ("tiny-mistral-w" + std::to_string(window));
  if (fs::exists(out)) return out.string();
  fs::copy(src, out, fs::copy_options::recursive);
  std::ifstream in(out / "config.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const std::string arch = "\"LlamaForCausalLM\"";
  const auto at = text.find(arch);
  EXPECT_NE(at, std::string::npos);
  text.replace(at, arch.size(), "\"MistralForCausalLM\"");
  text.insert(text.rfind('}'), ", \"sliding_window\": " + std::to_string(window) + "\n");
  std::ofstream(out / "config.json") << text;
  return out.string();
}

void compareWithNumpy(const std::string& preset, int n_tokens, const std::string& model_dir = "") {
  if (!havePythonNumpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  const std::string dir = model_dir.empty() ? makeTestModel(preset, "hf", "f32", 3) : model_dir;
  auto m = loadRunner(dir);
  ASSERT_TRUE(m);
  const std::vector<int32_t> prompt = randomPrompt(n_tokens, m->vocabSize(), 17);
  std::string ids;
  for (int32_t t : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const std::string npy = (tempDir().path() / (preset + "-ref.npy")).string();
  const std::string cmd = std::string(kPython) +
                          " " TURBINE_SOURCE_DIR "/tests/model/reference_forward.py " + dir +
                          " --tokens " + ids + " --out " + npy;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<float> ref;
  int64_t rows = 0, cols = 0;
  ASSERT_TRUE(readNpy(npy, ref, rows, cols)) << npy;
  ASSERT_EQ(rows, n_tokens);
  ASSERT_EQ(cols, m->vocabSize());
  // Every position, one token at a time (each step yields that position's logits).
  Sequence one_by_one(*m);
  double worst = 0;
  for (int t = 0; t < n_tokens; ++t) {
    const std::vector<float> logits = one_by_one.feed({prompt[static_cast<size_t>(t)]}, 1);
    const double err =
        relError(logits.data(), &ref[static_cast<size_t>(t * cols)], static_cast<size_t>(cols));
    EXPECT_LT(err, 1e-3) << preset << " position " << t;
    worst = std::max(worst, err);
  }
  // And the last position from a chunked prefill on fresh blocks of another runner.
  auto m2 = loadRunner(dir);
  ASSERT_TRUE(m2);
  Sequence chunked(*m2);
  const std::vector<float> last = chunked.feed(prompt, 5);
  EXPECT_LT(relError(last.data(), &ref[static_cast<size_t>((n_tokens - 1) * cols)],
                     static_cast<size_t>(cols)),
            1e-3);
  std::printf("%s: worst rel. error vs NumPy over %d positions: %.3g\n", preset.c_str(), n_tokens,
              worst);
}

TEST(ReferenceTest, TinyHfMatchesNumpy) { compareWithNumpy("tiny", 40); }
TEST(ReferenceTest, SmallHfMatchesNumpy) { compareWithNumpy("small", 24); }

// Mistral's sliding window (each token sees the last 6 positions): decode steps past the window
// read the cache from mid-block, chunks of 5 mask each row's own window; 40 positions span three
// 16-token blocks.
TEST(ReferenceTest, SlidingWindowMatchesNumpy) {
  const std::string dir = makeSlidingWindowModel(6);
  compareWithNumpy("tiny-mistral-w6", 40, dir);
  // The window changes the function: the last position's logits differ from full attention's.
  auto full = loadRunner(makeTestModel("tiny", "hf", "f32", 3));
  auto windowed = loadRunner(dir);
  ASSERT_TRUE(full && windowed);
  ASSERT_EQ(windowed->config().sliding_window, 6);
  const std::vector<int32_t> prompt = randomPrompt(40, full->vocabSize(), 17);
  Sequence a(*full), b(*windowed);
  const std::vector<float> la = a.feed(prompt, 40), lb = b.feed(prompt, 40);
  EXPECT_GT(relError(lb.data(), la.data(), la.size()), 1e-2);
}

std::vector<int32_t> greedy(LlamaModel& m, const std::vector<int32_t>& prompt, int steps) {
  Sequence s(m);
  std::vector<float> logits = s.feed(prompt, prompt.size());
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    out.push_back(argmax(logits));
    logits = s.feed({out.back()}, 1);
  }
  return out;
}

TEST(ReferenceTest, HfAndGgufGiveSameGreedyTokens) {
  auto hf = loadRunner(makeTestModel("tiny", "hf", "f32", 5));
  auto gguf = loadRunner(makeTestModel("tiny", "gguf", "f32", 5));
  ASSERT_TRUE(hf && gguf);
  ASSERT_EQ(gguf->config().rope_style, model::RopeStyle::kInterleaved);
  const std::vector<int32_t> prompt = randomPrompt(9, hf->vocabSize(), 23);
  const std::vector<int32_t> a = greedy(*hf, prompt, 64), b = greedy(*gguf, prompt, 64);
  EXPECT_EQ(a, b);
  // Non-degenerate: the continuation is not one token repeated.
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 3u);
}

// Logits of a lower-precision file along the f32 model's greedy trajectory.
void compareDtype(const std::string& format, const std::string& dtype, double bound) {
  auto ref = loadRunner(makeTestModel("tiny", format, "f32", 7));
  auto low = loadRunner(makeTestModel("tiny", format, dtype, 7));
  ASSERT_TRUE(ref && low);
  const std::vector<int32_t> prompt = randomPrompt(12, ref->vocabSize(), 29);
  std::vector<int32_t> tokens = prompt;
  const std::vector<int32_t> gen = greedy(*ref, prompt, 24);
  tokens.insert(tokens.end(), gen.begin(), gen.end());
  Sequence a(*ref), b(*low);
  double worst = 0;
  int agree = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::vector<float> la = a.feed({tokens[t]}, 1), lb = b.feed({tokens[t]}, 1);
    const double err = relError(lb.data(), la.data(), la.size());
    worst = std::max(worst, err);
    agree += argmax(la) == argmax(lb);
  }
  std::printf("%s %s: worst logits rel. error vs f32 %.3g, argmax agrees at %d/%zu\n",
              format.c_str(), dtype.c_str(), worst, agree, tokens.size());
  EXPECT_LT(worst, bound);
  EXPECT_GE(agree, static_cast<int>(tokens.size() * 8 / 10));
}

TEST(ReferenceTest, F16CloseToF32) { compareDtype("hf", "f16", 5e-3); }
TEST(ReferenceTest, Bf16CloseToF32) { compareDtype("hf", "bf16", 4e-2); }
TEST(ReferenceTest, Q8_0CloseToF32) { compareDtype("gguf", "q8_0", 4e-2); }

}  // namespace
}  // namespace turbine::engine
