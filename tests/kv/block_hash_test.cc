#include "kv/block_hash.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

namespace turbine::kv {
namespace {

// Serializes token ids as little-endian uint32, byte by byte (independent of the host order).
std::vector<uint8_t> le32(const std::vector<int32_t>& tokens) {
  std::vector<uint8_t> out;
  for (int32_t t : tokens) {
    const auto v = static_cast<uint32_t>(t);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(v >> (8 * b)));
  }
  return out;
}

TEST(BlockHash, RootIsXxh3OfModelIdNulSalt) {
  const std::string bytes = std::string("llama-3-8b") + '\0' + "tenant-a";
  EXPECT_EQ(rootHash("llama-3-8b", "tenant-a"), XXH3_64bits(bytes.data(), bytes.size()));
  const std::string no_salt = std::string("m") + '\0';
  EXPECT_EQ(rootHash("m", ""), XXH3_64bits(no_salt.data(), no_salt.size()));
  EXPECT_NE(rootHash("m", ""), rootHash("m", "x"));
  // The separator keeps ("ab","") and ("a","b") apart.
  EXPECT_NE(rootHash("ab", ""), rootHash("a", "b"));
}

TEST(BlockHash, ChainMatchesSpecVectors) {
  const int32_t bs = 4;
  std::vector<int32_t> tokens = {1, 2, 3, 4, 70000, -1, 0, 128255, 9, 9};  // 2 full blocks + 2
  const BlockHash root = rootHash("model", "");
  const auto b0 = le32({1, 2, 3, 4});
  const auto b1 = le32({70000, -1, 0, 128255});
  const uint64_t h0 = XXH3_64bits_withSeed(b0.data(), b0.size(), root);
  const uint64_t h1 = XXH3_64bits_withSeed(b1.data(), b1.size(), h0);
  const auto hashes = blockHashes(root, tokens, bs);
  ASSERT_EQ(hashes.size(), 2u);  // the partial block is not hashed
  EXPECT_EQ(hashes[0], h0);
  EXPECT_EQ(hashes[1], h1);
  EXPECT_EQ(hashBlock(root, std::vector<int32_t>{1, 2, 3, 4}), h0);
}

TEST(BlockHash, ChainPropertySharedIffPrefixShared) {
  const BlockHash root = rootHash("m", "");
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::vector<int32_t> b = a;
  b[5] = 99;  // differs in block 1
  const auto ha = blockHashes(root, a, 4), hb = blockHashes(root, b, 4);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);  // block 2 has equal tokens but a different prefix
  // Same block contents at block 0 under a different salt share nothing.
  const auto hc = blockHashes(rootHash("m", "salt"), a, 4);
  for (size_t i = 0; i < ha.size(); ++i) EXPECT_NE(ha[i], hc[i]);
}

TEST(BlockHash, ExtendIsIncremental) {
  const BlockHash root = rootHash("m", "s");
  std::vector<int32_t> tokens;
  std::vector<BlockHash> inc;
  for (int32_t t = 0; t < 100; ++t) {
    tokens.push_back(t * 7919 % 1000);
    extendBlockHashes(root, tokens, 16, inc);
    ASSERT_EQ(inc.size(), tokens.size() / 16);
  }
  EXPECT_EQ(inc, blockHashes(root, tokens, 16));
}

}  // namespace
}  // namespace turbine::kv
