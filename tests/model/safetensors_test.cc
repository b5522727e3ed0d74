// Safetensors reader/writer: round trip, sharded checkpoints, and one-line errors on corrupt and
// truncated files (never a crash).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/half.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"

namespace turbine::model {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("turbine_st_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string readAll(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void writeAll(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

// Writes "a" (F32 [2,3]), "b" (BF16 [4]) and "c" (F16 [1]).
void writeSample(const std::string& p) {
  SafetensorsWriter w;
  w.addMetadata("format", "pt");
  w.addTensor("a", "F32", {2, 3});
  w.addTensor("b", "BF16", {4});
  w.addTensor("c", "F16", {1});
  ASSERT_TRUE(w.open(p).isOk());
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t b[4] = {floatToBf16(1.5f), floatToBf16(-2), floatToBf16(0), floatToBf16(8)};
  uint16_t c = floatToF16(0.25f);
  ASSERT_TRUE(w.writeTensorData({reinterpret_cast<uint8_t*>(a), 12}).isOk());
  ASSERT_TRUE(w.writeTensorData({reinterpret_cast<uint8_t*>(a) + 12, 12}).isOk());
  ASSERT_TRUE(w.writeTensorData({reinterpret_cast<uint8_t*>(b), 8}).isOk());
  ASSERT_TRUE(w.writeTensorData({reinterpret_cast<uint8_t*>(&c), 2}).isOk());
  ASSERT_TRUE(w.close().isOk());
}

TEST_F(SafetensorsTest, RoundTrip) {
  std::string p = path("m.safetensors");
  writeSample(p);
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.isOk()) << f.status().toString();
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const SafetensorsTensor* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, "F32");
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  float got[6];
  std::memcpy(got, a->data, 24);
  EXPECT_EQ(got[5], 6.0f);
  auto va = safetensorsView(*a);
  ASSERT_TRUE(va.isOk());
  EXPECT_EQ(va->dtype, DType::kF32);
  EXPECT_EQ(va->rows(), 2);
  auto vb = safetensorsView(*f->find("b"));
  ASSERT_TRUE(vb.isOk());
  EXPECT_EQ(vb->dtype, DType::kBF16);
  uint16_t b0;
  std::memcpy(&b0, vb->data, 2);
  EXPECT_EQ(bf16ToFloat(b0), 1.5f);
  auto vc = safetensorsView(*f->find("c"));
  ASSERT_TRUE(vc.isOk());
  EXPECT_EQ(vc->dtype, DType::kF16);
  // The header is padded to 8 bytes so the data is aligned.
  uint64_t n;
  std::memcpy(&n, readAll(p).data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST_F(SafetensorsTest, UnsupportedDtypeNamesTensorAndDtype) {
  SafetensorsWriter w;
  w.addTensor("pos_ids", "I64", {2});
  std::string p = path("i.safetensors");
  ASSERT_TRUE(w.open(p).isOk());
  uint64_t v[2] = {0, 1};
  ASSERT_TRUE(w.writeTensorData({reinterpret_cast<uint8_t*>(v), 16}).isOk());
  ASSERT_TRUE(w.close().isOk());
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.isOk());  // the file is valid; only using the tensor as a weight is not
  auto view = safetensorsView(*f->find("pos_ids"));
  ASSERT_FALSE(view.isOk());
  EXPECT_EQ(view.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(view.status().message().find("tensor 'pos_ids': dtype I64"), std::string::npos)
      << view.status().message();
}

TEST_F(SafetensorsTest, EveryTruncationIsAnError) {
  std::string p = path("full.safetensors");
  writeSample(p);
  std::string bytes = readAll(p);
  std::string q = path("cut.safetensors");
  for (size_t n = 0; n < bytes.size(); ++n) {
    writeAll(q, bytes.substr(0, n));
    auto f = SafetensorsFile::open(q);
    ASSERT_FALSE(f.isOk()) << "prefix of " << n << " bytes opened";
    EXPECT_NE(f.status().message().find(q), std::string::npos) << f.status().message();
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos) << f.status().message();
  }
  // Cutting inside the data names the tensor.
  writeAll(q, bytes.substr(0, bytes.size() - 1));
  auto f = SafetensorsFile::open(q);
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(f.status().message().find("tensor 'c'"), std::string::npos) << f.status().message();
}

// Builds a file with a hand-written header.
void writeWithHeader(const std::string& p, const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  s += header;
  s.append(data_bytes, '\0');
  writeAll(p, s);
}

TEST_F(SafetensorsTest, CorruptHeadersGiveOneLineErrors) {
  struct Case {
    std::string header, expect;
  } cases[] = {
      {"{not json", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"w":{"dtype":"F32","shape":[2]}})", "tensor 'w': header entry needs"},
      {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "tensor 'w': 4 bytes"},
      {R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "tensor 'w': bad shape"},
      {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "tensor 'w': data_offsets"},
      {R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", "unknown dtype F33"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "outside the 8 data bytes"},
  };
  for (const auto& c : cases) {
    std::string p = path("bad.safetensors");
    writeWithHeader(p, c.header, 8);
    auto f = SafetensorsFile::open(p);
    ASSERT_FALSE(f.isOk()) << c.header;
    EXPECT_NE(f.status().message().find(c.expect), std::string::npos)
        << c.header << " -> " << f.status().message();
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos) << f.status().message();
  }
  // An absurd header length is rejected before reading.
  std::string p = path("huge.safetensors");
  std::string s(16, '\xff');
  writeAll(p, s);
  auto f = SafetensorsFile::open(p);
  ASSERT_FALSE(f.isOk());
  EXPECT_NE(f.status().message().find("header length"), std::string::npos);
}

TEST_F(SafetensorsTest, ShardedCheckpoint) {
  fs::path d = dir_ / "sharded";
  fs::create_directories(d);
  for (int s = 0; s < 2; ++s) {
    SafetensorsWriter w;
    w.addTensor("t" + std::to_string(s), "F32", {2});
    ASSERT_TRUE(w.open((d / ("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors"))
                           .string())
                    .isOk());
    float v[2] = {float(s), float(s) + 0.5f};
    ASSERT_TRUE(w.writeTensorData({reinterpret_cast<uint8_t*>(v), 8}).isOk());
    ASSERT_TRUE(w.close().isOk());
  }
  writeAll((d / "model.safetensors.index.json").string(),
           R"({"metadata":{},"weight_map":{"t0":"model-00001-of-00002.safetensors",
               "t1":"model-00002-of-00002.safetensors"}})");
  auto ck = SafetensorsCheckpoint::open(d.string());
  ASSERT_TRUE(ck.isOk()) << ck.status().toString();
  EXPECT_EQ(ck->files().size(), 2u);
  ASSERT_NE(ck->find("t1"), nullptr);
  float v;
  std::memcpy(&v, ck->find("t1")->data + 4, 4);
  EXPECT_EQ(v, 1.5f);
  EXPECT_NE(ck->find("t1")->file->find("model-00002"), std::string::npos);
  EXPECT_EQ(ck->find("t2"), nullptr);
  // An index naming a tensor its shard lacks is an error naming both.
  writeAll((d / "model.safetensors.index.json").string(),
           R"({"weight_map":{"t0":"model-00002-of-00002.safetensors"}})");
  ck = SafetensorsCheckpoint::open(d.string());
  ASSERT_FALSE(ck.isOk());
  EXPECT_NE(ck.status().message().find("tensor 't0'"), std::string::npos);
  // A missing shard is NotFound.
  writeAll((d / "model.safetensors.index.json").string(),
           R"({"weight_map":{"t0":"model-00009-of-00009.safetensors"}})");
  ck = SafetensorsCheckpoint::open(d.string());
  ASSERT_FALSE(ck.isOk());
  EXPECT_EQ(ck.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace turbine::model
