#include "frontend/stop_strings.h"

#include <gtest/gtest.h>

namespace turbine::frontend {
namespace {

// Feeds `pieces` one by one; returns everything shown plus whether it stopped.
std::pair<std::string, bool> feed(StopStringMatcher& m, const std::vector<std::string>& pieces,
                                  std::vector<std::string>* shown = nullptr) {
  std::string out;
  for (const auto& p : pieces) {
    std::string s = m.push(p);
    if (shown) shown->push_back(s);
    out += s;
  }
  if (!m.stopped()) out += m.flush();
  return {out, m.stopped()};
}

TEST(StopStrings, NoStopsPassThrough) {
  StopStringMatcher m(std::vector<std::string>{});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, MatchAcrossChunksIsHeldBack) {
  StopStringMatcher m({"END"});
  std::vector<std::string> shown;
  auto [text, stopped] = feed(m, {"hello E", "N", "D tail"}, &shown);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "hello ");
  EXPECT_EQ(shown[0], "hello ");  // "E" held
  EXPECT_EQ(shown[1], "");        // "EN" held
  EXPECT_EQ(m.matched(), "END");
  EXPECT_EQ(m.push("more"), "");
}

TEST(StopStrings, FalseStartIsReleased) {
  StopStringMatcher m({"END"});
  std::vector<std::string> shown;
  auto [text, stopped] = feed(m, {"xE", "Nx", "y"}, &shown);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(text, "xENxy");
  EXPECT_EQ(shown[1], "ENx");
}

TEST(StopStrings, EarliestOfSeveralWins) {
  StopStringMatcher m({"cd", "b"});
  auto [text, stopped] = feed(m, {"abcd"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "a");
  EXPECT_EQ(m.matched(), "b");
}

TEST(StopStrings, FlushReturnsHeldPartial) {
  StopStringMatcher m({"stop"});
  EXPECT_EQ(m.push("ends with st"), "ends with ");
  EXPECT_EQ(m.heldBytes(), 2u);
  EXPECT_EQ(m.flush(), "st");
}

TEST(StopStrings, ByteAtATimeNeverLeaksAPrefix) {
  const std::string text = "one two three four";
  StopStringMatcher m({"three"});
  std::string shown;
  for (char c : text) {
    shown += m.push(std::string(1, c));
    EXPECT_EQ(shown.find("th"), std::string::npos) << shown;
  }
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(shown, "one two ");
}

TEST(StopStrings, MultibyteStop) {
  StopStringMatcher m({"\xE2\x82\xAC"});  // euro sign
  auto [text, stopped] = feed(m, {"price \xE2", "\x82", "\xAC 5"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "price ");
}

}  // namespace
}  // namespace turbine::frontend
