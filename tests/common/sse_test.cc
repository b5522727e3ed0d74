#include "common/sse.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace turbine {
namespace {

using Events = std::vector<std::string>;

TEST(SseFramer, EventsSplitAnywhereComeOutWhole) {
  const std::string stream =
      "data: {\"a\":1}\n\n: a comment\nevent: x\ndata: {\"b\":2}\r\n\r\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
  const Events want = {"{\"a\":1}", "{\"b\":2}", "one\ntwo", "[DONE]"};
  for (size_t cut = 0; cut <= stream.size(); ++cut) {  // every split point of two reads
    SseFramer f;
    Events got = f.feed(std::string_view(stream).substr(0, cut));
    for (auto& e : f.feed(std::string_view(stream).substr(cut))) got.push_back(e);
    EXPECT_EQ(got, want) << "cut at " << cut;
    EXPECT_EQ(f.pending(), 0u);
  }
  SseFramer bytewise;
  Events got;
  for (char c : stream) {
    for (auto& e : bytewise.feed(std::string_view(&c, 1))) got.push_back(e);
  }
  EXPECT_EQ(got, want);
}

TEST(SseFramer, HoldsAnIncompleteEventAndSkipsEventsWithoutData) {
  SseFramer f;
  EXPECT_TRUE(f.feed(": keep-alive\n\nevent: ping\n\n").empty());
  EXPECT_TRUE(f.feed("data: {\"partial\"").empty());
  EXPECT_GT(f.pending(), 0u);
  EXPECT_EQ(f.feed(":1}\n\n"), Events{"{\"partial\":1}"});
  EXPECT_EQ(f.feed("data:no-space\n\n"), Events{"no-space"});
}

}  // namespace
}  // namespace turbine
