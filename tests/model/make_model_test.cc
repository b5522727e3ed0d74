// makeModel: option validation, determinism (same seed -> same bytes, other seed -> other
// weights), the q/k permutation, and the fixture that writes the tiny models the Python tests use.
#include "model/make_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "model/model_loader.h"

namespace turbine::model {
namespace {

namespace fs = std::filesystem;

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class MakeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("turbine_mm_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  MakeModelOptions options(const std::string& format, const std::string& dtype, uint64_t seed,
                           const std::string& name) {
    MakeModelOptions o;
    o.preset = "tiny";
    o.format = format;
    o.dtype = dtype;
    o.seed = seed;
    o.out = (dir_ / name).string();
    o.tokenizer_corpus_bytes = 512 << 10;
    return o;
  }
  fs::path dir_;
};

TEST_F(MakeModelTest, RejectsBadOptionsWithOneLineErrors) {
  auto o = options("hf", "q8_0", 1, "x");
  Status st = makeModel(o);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("q8_0 needs --format gguf"), std::string::npos) << st.message();
  o = options("hf", "f8", 1, "x");
  EXPECT_NE(makeModel(o).message().find("--dtype 'f8'"), std::string::npos);
  o = options("onnx", "f32", 1, "x");
  EXPECT_NE(makeModel(o).message().find("--format 'onnx'"), std::string::npos);
  o = options("hf", "f32", 1, "x");
  o.preset = "huge";
  EXPECT_NE(makeModel(o).message().find("--preset 'huge'"), std::string::npos);
  o = options("hf", "f32", 1, "");
  o.out.clear();
  EXPECT_FALSE(makeModel(o).isOk());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(MakeModelTest, PresetsHaveTheAdvertisedSizes) {
  auto params = [](const ModelPreset& p) {
    ModelConfig c = presetConfig(p);
    const double h = c.hidden_size, kv = double(c.num_kv_heads) * c.head_dim;
    const double layer = 2 * h * h + 2 * h * kv + 3 * h * c.intermediate_size + 2 * h;
    return 2 * double(c.vocab_size) * h + c.num_layers * layer + h;
  };
  EXPECT_NEAR(params(*findModelPreset("tiny")), 2e6, 0.5e6);
  EXPECT_NEAR(params(*findModelPreset("small")), 30e6, 8e6);
  EXPECT_NEAR(params(*findModelPreset("medium")), 250e6, 50e6);
  EXPECT_NEAR(params(*findModelPreset("large")), 1.1e9, 0.15e9);
  ModelConfig m = presetConfig(*findModelPreset("medium"));
  EXPECT_EQ(m.hidden_size, 1024);
  EXPECT_EQ(m.num_layers, 16);
  EXPECT_EQ(m.num_heads, 16);
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_EQ(m.intermediate_size, 2816);
  EXPECT_EQ(m.vocab_size, 32000);
}

TEST_F(MakeModelTest, SameSeedSameBytesOtherSeedOtherWeights) {
  for (const char* format : {"hf", "gguf"}) {
    SCOPED_TRACE(format);
    std::vector<float> progress;
    auto a = options(format, "f16", 7, std::string(format) + "_a");
    a.progress = [&](float f) { progress.push_back(f); };
    ASSERT_TRUE(makeModel(a).isOk());
    ASSERT_TRUE(makeModel(options(format, "f16", 7, std::string(format) + "_b")).isOk());
    ASSERT_TRUE(makeModel(options(format, "f16", 8, std::string(format) + "_c")).isOk());
    ASSERT_FALSE(progress.empty());
    EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
    EXPECT_FLOAT_EQ(progress.back(), 1.0f);
    const std::string weights = std::string(format) == "hf" ? "model.safetensors" : "model.gguf";
    for (const auto& e : fs::directory_iterator(dir_ / (std::string(format) + "_a"))) {
      const fs::path other = dir_ / (std::string(format) + "_b") / e.path().filename();
      EXPECT_EQ(readAll(e.path()), readAll(other)) << e.path().filename();
    }
    EXPECT_NE(readAll(dir_ / (std::string(format) + "_a") / weights),
              readAll(dir_ / (std::string(format) + "_c") / weights));
  }
}

TEST_F(MakeModelTest, WritesTheExpectedFiles) {
  ASSERT_TRUE(makeModel(options("hf", "bf16", 1, "hf")).isOk());
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors",
                        "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(dir_ / "hf" / f)) << f;
  }
  auto o = options("gguf", "q8_0", 1, "named.gguf");
  ASSERT_TRUE(makeModel(o).isOk());
  EXPECT_TRUE(fs::is_regular_file(dir_ / "named.gguf"));
  EXPECT_EQ(ggufOutputPath("/a/b"), "/a/b/model.gguf");
  EXPECT_EQ(ggufOutputPath("/a/b.gguf"), "/a/b.gguf");
}

TEST(PermuteQkTest, MatchesLlamaCppReshapeSwapaxes) {
  // 2 heads of head_dim 4, one byte per row: rows [h, 2, hd/2] -> [h, hd/2, 2].
  const int64_t rows = 8, hd = 4;
  std::vector<uint8_t> src(rows), dst(rows), back(rows);
  std::iota(src.begin(), src.end(), 0);
  permuteQkRows(src.data(), dst.data(), rows, hd, 1);
  EXPECT_EQ(dst, (std::vector<uint8_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  inversePermuteQkRows(dst.data(), back.data(), rows, hd, 1);
  EXPECT_EQ(back, src);
  // Larger head_dim, multi-byte rows: round trip and pairing (2j, 2j+1) <- (j, j + hd/2).
  const int64_t hd2 = 8, rows2 = 16;
  const size_t rb = 3;
  std::vector<uint8_t> s(rows2 * rb), d(rows2 * rb), b(rows2 * rb);
  std::iota(s.begin(), s.end(), 0);
  permuteQkRows(s.data(), d.data(), rows2, hd2, rb);
  for (int64_t h = 0; h < rows2 / hd2; ++h) {
    for (int64_t j = 0; j < hd2 / 2; ++j) {
      EXPECT_EQ(d[(h * hd2 + 2 * j) * rb], s[(h * hd2 + j) * rb]);
      EXPECT_EQ(d[(h * hd2 + 2 * j + 1) * rb], s[(h * hd2 + j + hd2 / 2) * rb]);
    }
  }
  inversePermuteQkRows(d.data(), b.data(), rows2, hd2, rb);
  EXPECT_EQ(b, s);
}

// Not a unit test: writes the models that tests/model/python_tests.cmake's tests read, into
// <build>/test_models. Run by CTest as a fixture (it is disabled in the plain gtest run so that
// two runs never write the same files at once).
TEST(MakeModelFixture, DISABLED_WriteTestModels) {
  const fs::path root = fs::path(TURBINE_BINARY_DIR) / "test_models";
  struct {
    const char* name;
    const char* format;
    const char* dtype;
  } models[] = {{"tiny-hf-f32", "hf", "f32"}, {"tiny-f32.gguf", "gguf", "f32"}};
  for (const auto& m : models) {
    MakeModelOptions o;
    o.preset = "tiny";
    o.format = m.format;
    o.dtype = m.dtype;
    o.seed = 1;
    o.out = (root / m.name).string();
    Status st = makeModel(o);
    ASSERT_TRUE(st.isOk()) << st.toString();
    auto w = loadModel(o.out);
    ASSERT_TRUE(w.isOk()) << w.status().toString();
  }
}

}  // namespace
}  // namespace turbine::model
