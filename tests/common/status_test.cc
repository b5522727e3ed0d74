#include "common/status.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/half.h"

namespace turbine {
namespace {

Result<int> parsePositive(int v) {
  if (v <= 0) return invalidArgument("not positive: " + std::to_string(v));
  return v;
}

Result<int> doubled(int v) {
  TURBINE_ASSIGN_OR_RETURN(int x, parsePositive(v));
  return 2 * x;
}

TEST(StatusTest, ResultCarriesValueOrStatus) {
  auto ok = doubled(4);
  ASSERT_TRUE(ok.isOk());
  EXPECT_EQ(*ok, 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().toString(), "INVALID_ARGUMENT: not positive: -1");
}

TEST(HalfTest, RoundTripsExactValues) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(f16ToFloat(floatToF16(f)), f) << f;
    EXPECT_EQ(bf16ToFloat(floatToBf16(f)), bf16ToFloat(floatToBf16(f)));
  }
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f)), 1.0f);
  EXPECT_TRUE(std::isinf(f16ToFloat(floatToF16(1e6f))));
}

TEST(HalfTest, F16MatchesHardwareRoundingOnAllHalfValues) {
  // Every f16 bit pattern (except NaNs) converts to float and back to itself.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t x = static_cast<uint16_t>(h);
    if ((x & 0x7c00) == 0x7c00 && (x & 0x3ff) != 0) continue;
    ASSERT_EQ(floatToF16(f16ToFloat(x)), x) << h;
  }
}

}  // namespace
}  // namespace turbine
