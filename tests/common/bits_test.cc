#include "common/bits.h"

#include <bit>
#include <cstdint>
#include <random>

#include <gtest/gtest.h>

namespace turbine {
namespace {

// Against a bit-by-bit count: the edges, every single bit, and random words of every density.
TEST(Bits, Popcount64CountsEveryBit) {
  auto slow = [](uint64_t x) {
    int n = 0;
    for (int b = 0; b < 64; ++b) n += static_cast<int>((x >> b) & 1);
    return n;
  };
  EXPECT_EQ(popcount64(0), 0);
  EXPECT_EQ(popcount64(~uint64_t{0}), 64);
  for (int b = 0; b < 64; ++b) {
    EXPECT_EQ(popcount64(uint64_t{1} << b), 1) << b;
    EXPECT_EQ(popcount64(~(uint64_t{1} << b)), 63) << b;
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    uint64_t x = rng();
    for (int k = i % 4; k > 0; --k) x &= rng();  // sparser words too
    ASSERT_EQ(popcount64(x), slow(x)) << x;
  }
}

}  // namespace
}  // namespace turbine
