// The weights' placement for the m = 1 kernels: MappedFile::anonymousCopy (2 MiB-aligned,
// huge-page-advised, read-only after the fill) and the model loader's copy of the weights into
// it (TURBINE_WEIGHTS=copy|mmap|auto): same bytes, same results, the file maps released; and the
// m = 1 matmul reading weights from such memory at every alignment a tensor can start at.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/half.h"
#include "common/mapped_file.h"
#include "engine/cpu/kernels.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine::cpu {
namespace {

namespace fs = std::filesystem;
using model::DType;
using model::TensorView;

constexpr size_t kHugePage = size_t{2} << 20;

// The permissions ("r--p", ...) of the mapping holding `p`, from /proc/self/maps; "" if none.
std::string permissionsOf(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms;
    in >> range >> perms;
    const size_t dash = range.find('-');
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (addr >= lo && addr < hi) return perms;
  }
  return "";
}

TEST(AnonymousCopyTest, HoldsTheFilledBytesAlignedAndReadOnly) {
  const size_t size = 5 * kHugePage + 13;  // not a multiple of any page size
  auto r = MappedFile::anonymousCopy("weights of test", size, [&](uint8_t* dst) {
    for (size_t i = 0; i < size; ++i) dst[i] = static_cast<uint8_t>(i * 7 + 3);
    return Status::ok();
  });
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const MappedFile& f = **r;
  EXPECT_TRUE(f.anonymous());
  EXPECT_EQ(f.path(), "weights of test");
  ASSERT_EQ(f.size(), size);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.data()) % kHugePage, 0u);
  for (size_t i = 0; i < size; ++i) {
    ASSERT_EQ(f.data()[i], static_cast<uint8_t>(i * 7 + 3)) << "byte " << i;
  }
  EXPECT_EQ(permissionsOf(f.data()).substr(0, 3), "r--");
  EXPECT_EQ(permissionsOf(f.data() + size - 1).substr(0, 3), "r--");
}

TEST(AnonymousCopyTest, EmptyAndFailingFills) {
  auto empty = MappedFile::anonymousCopy("empty", 0, [](uint8_t*) { return Status::ok(); });
  ASSERT_TRUE(empty.isOk()) << empty.status().toString();
  EXPECT_EQ((*empty)->size(), 0u);
  auto bad = MappedFile::anonymousCopy("bad", 4096, [](uint8_t*) {
    return invalidArgument("tensor 'x': short read");
  });
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("short read"), std::string::npos);
}

// Sets TURBINE_WEIGHTS for the scope, restoring the previous value.
class ScopedPlacement {
 public:
  explicit ScopedPlacement(const char* mode) {
    const char* old = std::getenv("TURBINE_WEIGHTS");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (mode != nullptr) {
      ::setenv("TURBINE_WEIGHTS", mode, 1);
    } else {
      ::unsetenv("TURBINE_WEIGHTS");
    }
  }
  ~ScopedPlacement() {
    if (had_) {
      ::setenv("TURBINE_WEIGHTS", old_.c_str(), 1);
    } else {
      ::unsetenv("TURBINE_WEIGHTS");
    }
  }

 private:
  bool had_ = false;
  std::string old_;
};

std::vector<const TensorView*> viewsOf(const model::ModelWeights& w) {
  std::vector<const TensorView*> all = {&w.tok_embeddings, &w.final_norm, &w.lm_head};
  for (const auto& l : w.layers) {
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.bq, &l.bk, &l.bv, &l.wo,
                                &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      all.push_back(t);
    }
  }
  return all;
}

class LoaderPlacementTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("turbine_huge_pages_test_" + std::to_string(::getpid()) + "_" + GetParam());
    model::MakeModelOptions o;
    o.preset = "tiny";
    o.format = GetParam() == "q8_0" ? "gguf" : "hf";
    o.dtype = GetParam();
    o.seed = 3;
    o.tokenizer_corpus_bytes = 64 << 10;
    o.out = (dir_ / "m").string();
    ASSERT_TRUE(model::makeModel(o).isOk());
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<model::ModelWeights> load(const char* mode) {
    ScopedPlacement p(mode);
    return model::loadModel((dir_ / "m").string());
  }
  fs::path dir_;
};

TEST_P(LoaderPlacementTest, CopyHoldsTheSameTensorsAsTheMap) {
  auto mapped = load("mmap");
  auto copied = load("copy");
  ASSERT_TRUE(mapped.isOk()) << mapped.status().toString();
  ASSERT_TRUE(copied.isOk()) << copied.status().toString();
  for (const auto& f : mapped->files) EXPECT_FALSE(f->anonymous());
  ASSERT_EQ(copied->files.size(), 1u);  // the file maps are released
  EXPECT_TRUE(copied->files[0]->anonymous());
  const uint8_t* lo = copied->files[0]->data();
  const uint8_t* hi = lo + copied->files[0]->size();
  std::vector<const TensorView*> a = viewsOf(*mapped), b = viewsOf(*copied);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(a[i]->name);
    ASSERT_EQ(a[i]->present(), b[i]->present());
    if (!a[i]->present()) continue;
    EXPECT_EQ(a[i]->name, b[i]->name);
    EXPECT_EQ(a[i]->shape, b[i]->shape);
    ASSERT_EQ(a[i]->nbytes, b[i]->nbytes);
    const auto* p = static_cast<const uint8_t*>(b[i]->data);
    EXPECT_TRUE(p >= lo && p + b[i]->nbytes <= hi) << "outside the copy";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    EXPECT_EQ(std::memcmp(a[i]->data, b[i]->data, a[i]->nbytes), 0);
  }
  // Tied embeddings stay one tensor.
  EXPECT_EQ(mapped->lm_head.data == mapped->tok_embeddings.data,
            copied->lm_head.data == copied->tok_embeddings.data);
  EXPECT_EQ(mapped->totalBytes(), copied->totalBytes());

  // The same m = 1 product from either placement, bit for bit.
  ThreadPool pool(2);
  std::vector<float> x(static_cast<size_t>(mapped->lm_head.cols()), 0.25f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  std::vector<float> ya(static_cast<size_t>(mapped->lm_head.rows())), yb(ya.size());
  matmul(pool, x.data(), 1, mapped->lm_head, ya.data());
  matmul(pool, x.data(), 1, copied->lm_head, yb.data());
  EXPECT_EQ(ya, yb);
}

bool transparentHugePagesEnabled() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  return std::getline(in, line) && line.find("[never]") == std::string::npos;
}

TEST_P(LoaderPlacementTest, AutoCopiesFromFourMiBAndProgressEndsAtOne) {
  auto w = load(nullptr);  // auto (the tiny model is ~1-7 MiB, 100s of MiB are free)
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  const bool expect_copy = w->totalBytes() >= (size_t{4} << 20) && transparentHugePagesEnabled();
  for (const auto& f : w->files) EXPECT_EQ(f->anonymous(), expect_copy) << w->totalBytes();
  ScopedPlacement p("copy");
  std::vector<float> progress;
  auto c = model::loadModel((dir_ / "m").string(), [&](float f) { progress.push_back(f); });
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), 1.0f);
  for (size_t i = 1; i < progress.size(); ++i) EXPECT_GE(progress[i], progress[i - 1]);
}

TEST_P(LoaderPlacementTest, UnknownPlacementIsAnErrorNamingIt) {
  auto w = load("hugepages");
  ASSERT_FALSE(w.isOk());
  EXPECT_NE(w.status().message().find("TURBINE_WEIGHTS=hugepages"), std::string::npos)
      << w.status().toString();
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LoaderPlacementTest, testing::Values("f32", "bf16", "q8_0"),
                         [](const auto& info) { return info.param; });

// The m = 1 kernels on weights in huge-page memory, the tensor starting at every 2-byte offset
// of a cache line (GGUF aligns tensors to 32 bytes, safetensors only to the element size), odd
// row lengths (masked tails) included; checked against a float64 reference.
TEST(HugePageGemvTest, EveryStartOffsetAndTail) {
  ThreadPool pool(2);
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t k : {1, 15, 17, 64, 1000, 1027}) {
      const int64_t n = 37;
      const size_t elem = dtype == DType::kF32 ? 4 : 2;
      const size_t bytes = static_cast<size_t>(n * k) * elem;
      std::vector<double> values(static_cast<size_t>(n * k));
      std::vector<uint8_t> src(bytes);
      for (size_t i = 0; i < values.size(); ++i) {
        float v = dist(rng);
        if (dtype == DType::kF32) {
          std::memcpy(&src[i * 4], &v, 4);
          values[i] = v;
        } else {
          uint16_t h = dtype == DType::kF16 ? floatToF16(v) : floatToBf16(v);
          std::memcpy(&src[i * 2], &h, 2);
          values[i] = dtype == DType::kF16 ? f16ToFloat(h) : bf16ToFloat(h);
        }
      }
      std::vector<float> x(static_cast<size_t>(k));
      for (auto& v : x) v = dist(rng);
      for (size_t offset = 0; offset < 64; offset += elem) {
        SCOPED_TRACE(testing::Message() << model::dtypeName(dtype) << " k=" << k
                                        << " offset=" << offset);
        auto region = MappedFile::anonymousCopy("gemv", offset + bytes, [&](uint8_t* dst) {
          std::memcpy(dst + offset, src.data(), bytes);
          return Status::ok();
        });
        ASSERT_TRUE(region.isOk());
        TensorView w;
        w.name = "w";
        w.dtype = dtype;
        w.shape = {n, k};
        w.data = (*region)->data() + offset;
        w.nbytes = bytes;
        std::vector<float> y(static_cast<size_t>(n));
        matmul(pool, x.data(), 1, w, y.data());
        for (int64_t r = 0; r < n; ++r) {
          // ref: against x as given; ref_bx: against x rounded to bf16, which the AVX512-BF16
          // kernel (vdpbf16ps) computes. A bf16 row must match one of the two to f32 precision.
          double ref = 0, ref_bx = 0, mag = 0;
          for (int64_t i = 0; i < k; ++i) {
            const double wv = values[static_cast<size_t>(r * k + i)];
            const float xv = x[static_cast<size_t>(i)];
            ref += wv * xv;
            ref_bx += wv * bf16ToFloat(floatToBf16(xv));
            mag += std::abs(wv * xv);
          }
          const double y_r = y[static_cast<size_t>(r)], tol = 1e-5 * mag + 1e-6;
          if (dtype == DType::kBF16 && std::abs(y_r - ref) > tol) {
            ASSERT_NEAR(y_r, ref_bx, tol) << "row " << r << " (neither x nor bf16(x))";
          } else {
            ASSERT_NEAR(y_r, ref, tol) << "row " << r;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace turbine::engine::cpu
