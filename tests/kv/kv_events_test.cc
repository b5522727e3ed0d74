#include "kv/kv_events.h"

#include <gtest/gtest.h>

namespace turbine::kv {
namespace {

TEST(KvEvents, TierNamesRoundTrip) {
  for (Tier t : {Tier::kDevice, Tier::kHost, Tier::kDisk, Tier::kRemote}) {
    auto parsed = parseTier(tierName(t));
    ASSERT_TRUE(parsed.isOk());
    EXPECT_EQ(*parsed, t);
  }
  auto bad = parseTier("gpu");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("gpu"), std::string::npos);
}

TEST(KvEvents, BlockSetAppliesStoredRemovedCleared) {
  KvBlockSet set;
  KvEventMessage m0{7, 0, {BlockStored{{1, 2, 3}, std::nullopt, Tier::kDevice},
                           BlockStored{{10}, 3, Tier::kHost}}};
  ASSERT_TRUE(set.apply(m0).isOk());
  EXPECT_EQ(set.size(), 3u);
  EXPECT_TRUE(set.contains(10, Tier::kHost));
  EXPECT_FALSE(set.contains(10, Tier::kDevice));
  KvEventMessage m1{7, 1, {BlockRemoved{{2, 42}, Tier::kDevice}}};
  ASSERT_TRUE(set.apply(m1).isOk());
  EXPECT_FALSE(set.contains(2));
  EXPECT_TRUE(set.contains(1));
  KvEventMessage m2{7, 2, {AllCleared{}}};
  ASSERT_TRUE(set.apply(m2).isOk());
  EXPECT_EQ(set.size(Tier::kDevice), 0u);
  EXPECT_EQ(set.size(Tier::kHost), 0u);
  EXPECT_EQ(set.lastSeq(), 2u);
}

TEST(KvEvents, SeqGapIsRefusedAndAppliesNothing) {
  KvBlockSet set;
  ASSERT_TRUE(set.apply(KvEventMessage{1, 5, {BlockStored{{1}, std::nullopt, Tier::kDevice}}})
                  .isOk());
  Status st = set.apply(KvEventMessage{1, 7, {BlockStored{{2}, 1, Tier::kDevice}}});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("expected 6"), std::string::npos);
  EXPECT_FALSE(set.contains(2));
}

}  // namespace
}  // namespace turbine::kv
