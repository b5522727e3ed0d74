// KvCache: sizing, layout (a block is one contiguous run across layers), store/read round trips.
#include "engine/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace turbine::engine {
namespace {

KvCacheOptions smallOptions() {
  KvCacheOptions o;
  o.num_layers = 3;
  o.num_kv_heads = 2;
  o.head_dim = 8;
  o.block_size = 4;
  o.num_blocks = 5;
  return o;
}

TEST(KvCacheTest, SizesFromBlockCount) {
  auto kv = KvCache::create(smallOptions());
  ASSERT_TRUE(kv.isOk()) << kv.status().toString();
  EXPECT_EQ((*kv)->numBlocks(), 5);
  EXPECT_EQ((*kv)->bytesPerBlock(), size_t{3 * 2 * 2 * 4 * 8 * 4});
  EXPECT_EQ((*kv)->totalBytes(), (*kv)->bytesPerBlock() * 5);
  // The pool starts on a 2 MiB boundary (AnonymousMemory: huge pages where the kernel has them).
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*kv)->blockData(0)) % AnonymousMemory::kHugePage, 0u);
}

TEST(KvCacheTest, SizesFromMemoryBudget) {
  KvCacheOptions o = smallOptions();
  o.num_blocks = 0;
  const size_t block_bytes = KvCache::bytesPerToken(o) * o.block_size;
  o.memory_bytes = block_bytes * 7 + block_bytes / 2;  // 7.5 blocks: rounds down
  auto kv = KvCache::create(o);
  ASSERT_TRUE(kv.isOk()) << kv.status().toString();
  EXPECT_EQ((*kv)->numBlocks(), 7);
  o.dtype = KvDType::kBF16;
  auto kv16 = KvCache::create(o);
  ASSERT_TRUE(kv16.isOk());
  EXPECT_EQ((*kv16)->numBlocks(), 15);  // half the bytes per block
}

TEST(KvCacheTest, RejectsEmptyPoolAndBadDims) {
  KvCacheOptions o = smallOptions();
  o.num_blocks = 0;
  o.memory_bytes = 10;
  auto a = KvCache::create(o);
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  o = smallOptions();
  o.head_dim = 0;
  EXPECT_FALSE(KvCache::create(o).isOk());
  o = smallOptions();
  o.block_size = -1;
  EXPECT_FALSE(KvCache::create(o).isOk());
}

// Writes a distinct value into every cell through store() and reads every cell back through
// readRowsF32(): any overlap of two cells, or a cell outside its block, shows up.
void roundTrip(KvDType dtype, float tol) {
  KvCacheOptions o = smallOptions();
  o.dtype = dtype;
  auto created = KvCache::create(o);
  ASSERT_TRUE(created.isOk());
  KvCache& kv = **created;
  const int per = o.num_kv_heads * o.head_dim;
  auto value = [&](int b, int l, int kvi, int slot, int i) {
    return static_cast<float>(((b * 7 + l) * 2 + kvi) * 1000 + slot * 50 + i) * 0.01f - 3.0f;
  };
  std::vector<float> k(per), v(per);
  for (int b = 0; b < kv.numBlocks(); ++b) {
    for (int l = 0; l < o.num_layers; ++l) {
      for (int s = 0; s < o.block_size; ++s) {
        for (int i = 0; i < per; ++i) {
          k[i] = value(b, l, 0, s, i);
          v[i] = value(b, l, 1, s, i);
        }
        kv.store(l, b, s, k.data(), v.data());
      }
    }
  }
  std::vector<float> buf(o.block_size * o.head_dim);
  for (int b = 0; b < kv.numBlocks(); ++b) {
    const uint8_t* lo = kv.blockData(b);
    for (int l = 0; l < o.num_layers; ++l) {
      for (int kvi = 0; kvi < 2; ++kvi) {
        for (int h = 0; h < o.num_kv_heads; ++h) {
          const auto* p = static_cast<const uint8_t*>(kv.headRows(b, l, kvi, h));
          EXPECT_GE(p, lo);
          EXPECT_LT(p, lo + kv.bytesPerBlock());
          const float* rows = kv.readRowsF32(b, l, kvi, h, o.block_size, buf.data());
          for (int s = 0; s < o.block_size; ++s) {
            for (int d = 0; d < o.head_dim; ++d) {
              const float want = value(b, l, kvi, s, h * o.head_dim + d);
              ASSERT_NEAR(rows[s * o.head_dim + d], want, tol * (1.0f + std::fabs(want)))
                  << "block " << b << " layer " << l << " kv " << kvi << " head " << h;
            }
          }
        }
      }
    }
  }
}

TEST(KvCacheTest, DtypeNamesRoundTrip) {
  for (KvDType t : {KvDType::kF32, KvDType::kF16, KvDType::kBF16}) {
    EXPECT_EQ(kvDTypeFromName(kvDTypeName(t)), t) << kvDTypeName(t);
  }
  EXPECT_EQ(kvDTypeFromName("auto"), std::nullopt);
  EXPECT_EQ(kvDTypeFromName("q4"), std::nullopt);
  EXPECT_EQ(kvDTypeFromName(""), std::nullopt);
}

TEST(KvCacheTest, RoundTripF32Exact) { roundTrip(KvDType::kF32, 0.0f); }
TEST(KvCacheTest, RoundTripF16) { roundTrip(KvDType::kF16, 1e-3f); }
TEST(KvCacheTest, RoundTripBf16) { roundTrip(KvDType::kBF16, 8e-3f); }

}  // namespace
}  // namespace turbine::engine
