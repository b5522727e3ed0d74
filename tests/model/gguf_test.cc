// GGUF reader/writer: round trip of every metadata type and of tensors, alignment, and one-line
// errors (never a crash) on corrupt and truncated files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace turbine::model {
namespace {

namespace fs = std::filesystem;

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("turbine_gguf_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

GgufValue scalar(GgufType t, int64_t x) { return {t, GgufType::kUint8, x}; }

// Writes a file with one key of every type and two tensors; returns the tensor payloads.
std::vector<std::vector<float>> writeSample(const std::string& p, uint32_t alignment) {
  GgufWriter w;
  w.setAlignment(alignment);
  w.add("u8", scalar(GgufType::kUint8, 200));
  w.add("i8", scalar(GgufType::kInt8, -100));
  w.add("u16", scalar(GgufType::kUint16, 60000));
  w.add("i16", scalar(GgufType::kInt16, -30000));
  w.addUint32("u32", 4000000000u);
  w.addInt32("i32", -2000000000);
  w.add("u64", scalar(GgufType::kUint64, int64_t{1} << 62));
  w.add("i64", scalar(GgufType::kInt64, -(int64_t{1} << 62)));
  w.addFloat32("f32", 0.25f);
  w.add("f64", GgufValue{GgufType::kFloat64, GgufType::kUint8, 1e-300});
  w.addBool("b", true);
  w.addString("s", "héllo");
  w.addStringArray("sa", {"a", "", "ccc"});
  w.addInt32Array("ia", {1, -2, 3});
  w.addFloat32Array("fa", {0.5f, -1.5f});
  std::vector<std::vector<float>> data = {std::vector<float>(3 * 5), std::vector<float>(7)};
  std::iota(data[0].begin(), data[0].end(), 1.0f);
  std::iota(data[1].begin(), data[1].end(), -3.0f);
  w.addTensor("t0", {5, 3}, GgmlType::kF32);
  w.addTensor("t1", {7}, GgmlType::kF32);
  EXPECT_TRUE(w.open(p).isOk());
  for (const auto& d : data) {
    auto* b = reinterpret_cast<const uint8_t*>(d.data());
    // Two chunks per tensor, to exercise streaming.
    size_t half = d.size() / 2 * 4;
    EXPECT_TRUE(w.writeTensorData({b, half}).isOk());
    EXPECT_TRUE(w.writeTensorData({b + half, d.size() * 4 - half}).isOk());
  }
  EXPECT_TRUE(w.close().isOk());
  return data;
}

TEST_F(GgufTest, RoundTripEveryMetadataTypeAndTensors) {
  for (uint32_t alignment : {32u, 64u, 8u}) {
    std::string p = path("rt.gguf");
    auto data = writeSample(p, alignment);
    auto f = GgufFile::open(p);
    ASSERT_TRUE(f.isOk()) << f.status().toString();
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(*f->getInt("u8"), 200);
    EXPECT_EQ(*f->getInt("i8"), -100);
    EXPECT_EQ(*f->getInt("u16"), 60000);
    EXPECT_EQ(*f->getInt("i16"), -30000);
    EXPECT_EQ(*f->getInt("u32"), 4000000000LL);
    EXPECT_EQ(*f->getInt("i32"), -2000000000);
    EXPECT_EQ(*f->getInt("u64"), int64_t{1} << 62);
    EXPECT_EQ(*f->getInt("i64"), -(int64_t{1} << 62));
    EXPECT_EQ(*f->getFloat("f32"), 0.25);
    EXPECT_EQ(*f->getFloat("f64"), 1e-300);
    EXPECT_EQ(*f->getFloat("u32"), 4e9);  // any numeric type reads as a float
    EXPECT_TRUE(*f->getBool("b"));
    EXPECT_EQ(*f->getString("s"), "héllo");
    EXPECT_EQ(*f->getStringArray("sa"), (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(*f->getIntArray("ia"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(*f->getFloatArray("fa"), (std::vector<double>{0.5, -1.5}));
    EXPECT_EQ(f->find("sa")->elem_type, GgufType::kString);
    ASSERT_EQ(f->keys().size(), 16u);  // 15 + general.alignment
    EXPECT_EQ(f->keys()[0], "general.alignment");
    EXPECT_EQ(f->keys()[1], "u8");

    ASSERT_EQ(f->tensors().size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const GgufTensorInfo& t = f->tensors()[i];
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % alignment, 0u) << t.name;
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.nbytes, data[i].size() * 4);
      EXPECT_EQ(std::memcmp(t.data, data[i].data(), t.nbytes), 0) << t.name;
    }
    const GgufTensorInfo* t0 = f->findTensor("t0");
    ASSERT_NE(t0, nullptr);
    EXPECT_EQ(t0->ne, (std::vector<int64_t>{5, 3}));
    EXPECT_EQ(f->findTensor("nope"), nullptr);
  }
}

TEST_F(GgufTest, TypedGettersNameTheKey) {
  std::string p = path("g.gguf");
  writeSample(p, 32);
  auto f = GgufFile::open(p);
  ASSERT_TRUE(f.isOk());
  auto missing = f->getInt("absent.key");
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("absent.key"), std::string::npos);
  auto wrong = f->getString("u32");
  ASSERT_FALSE(wrong.isOk());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("'u32'"), std::string::npos);
  EXPECT_FALSE(f->getIntArray("sa").isOk());
  EXPECT_FALSE(f->getBool("s").isOk());
}

std::string readAll(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void writeAll(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

// Every truncation point gives a one-line error that names the file (never a crash).
TEST_F(GgufTest, EveryTruncationIsAnError) {
  std::string p = path("full.gguf");
  writeSample(p, 32);
  std::string bytes = readAll(p);
  std::string q = path("cut.gguf");
  for (size_t n = 0; n < bytes.size(); ++n) {
    writeAll(q, bytes.substr(0, n));
    auto f = GgufFile::open(q);
    ASSERT_FALSE(f.isOk()) << "prefix of " << n << " bytes opened";
    const std::string& m = f.status().message();
    EXPECT_NE(m.find(q), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST_F(GgufTest, TruncatedDataNamesTheTensor) {
  std::string p = path("full.gguf");
  writeSample(p, 32);
  std::string bytes = readAll(p);
  writeAll(p, bytes.substr(0, bytes.size() - 4));
  auto f = GgufFile::open(p);
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(f.status().message().find("tensor 't1': data extends past end of file"),
            std::string::npos)
      << f.status().message();
}

TEST_F(GgufTest, BadMagicAndVersion) {
  std::string p = path("m.gguf");
  writeSample(p, 32);
  std::string bytes = readAll(p);
  std::string bad = bytes;
  bad[0] = 'X';
  writeAll(p, bad);
  auto f = GgufFile::open(p);
  ASSERT_FALSE(f.isOk());
  EXPECT_NE(f.status().message().find("bad magic"), std::string::npos);
  bad = bytes;
  bad[4] = 1;  // version 1
  writeAll(p, bad);
  f = GgufFile::open(p);
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kUnimplemented);
  bad[4] = 2;  // version 2 has the same layout and is accepted
  writeAll(p, bad);
  EXPECT_TRUE(GgufFile::open(p).isOk());
}

TEST_F(GgufTest, UnknownTensorTypeAndHugeCountsNameTheProblem) {
  GgufWriter w;
  w.addTensor("weird", {32}, GgmlType::kF32);
  std::string p = path("u.gguf");
  ASSERT_TRUE(w.open(p).isOk());
  std::vector<uint8_t> zeros(128);
  ASSERT_TRUE(w.writeTensorData(zeros).isOk());
  ASSERT_TRUE(w.close().isOk());
  std::string bytes = readAll(p);
  // The tensor's type field sits 12 bytes before the end of the tensor info (type, offset).
  size_t info_end = 24 + 8 + 5 + 4 + 8 + 4 + 8;
  uint32_t bogus = 77;
  std::memcpy(&bytes[info_end - 12], &bogus, 4);
  writeAll(p, bytes);
  auto f = GgufFile::open(p);
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(f.status().message().find("tensor 'weird': unknown ggml type 77"), std::string::npos)
      << f.status().message();
  // A metadata count far beyond the file size is rejected without allocating.
  bytes = readAll(p);
  uint64_t huge = uint64_t{1} << 60;
  std::memcpy(&bytes[16], &huge, 8);
  writeAll(p, bytes);
  f = GgufFile::open(p);
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
}

// Real vocab-only files (from llama.cpp's test data) open and expose their tokenizer metadata.
TEST_F(GgufTest, OpensRealVocabFiles) {
  fs::path dir = fs::path(TURBINE_SOURCE_DIR) / ".." / "shared" / "data" / "tokenizers";
  if (!fs::exists(dir)) GTEST_SKIP() << "no " << dir << " on this machine";
  int opened = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".gguf") continue;
    auto f = GgufFile::open(e.path().string());
    ASSERT_TRUE(f.isOk()) << f.status().toString();
    auto tokens = f->getStringArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.isOk()) << tokens.status().toString();
    EXPECT_GT(tokens->size(), 30000u) << e.path();
    EXPECT_TRUE(f->getString("tokenizer.ggml.model").isOk());
    EXPECT_TRUE(f->tensors().empty());
    ++opened;
  }
  EXPECT_GT(opened, 0);
}

TEST_F(GgufTest, MissingFileIsNotFound) {
  auto f = GgufFile::open(path("absent.gguf"));
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace turbine::model
