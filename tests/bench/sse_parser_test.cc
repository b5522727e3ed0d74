#include "bench/sse_parser.h"

#include <gtest/gtest.h>

namespace turbine::bench {
namespace {

TEST(SseParser, ReassemblesEventsSplitAcrossReads) {
  const std::string stream =
      "data: {\"choices\":[{\"index\":0,\"text\":\" hello\"}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"text\":\" world\"}]}\r\n\r\n"
      ": a comment\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,"
      "\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
      "data: [DONE]\n\n";
  // Feed one byte at a time: the events must come out whole and in order.
  SseParser p;
  std::vector<SseEvent> events;
  for (char c : stream) {
    for (auto& e : p.feed(std::string_view(&c, 1))) events.push_back(std::move(e));
  }
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].text, " hello");
  EXPECT_TRUE(events[0].has_content);
  EXPECT_EQ(events[1].text, " world");
  EXPECT_FALSE(events[2].has_content);
  EXPECT_EQ(*events[2].prompt_tokens, 7);
  EXPECT_EQ(*events[2].completion_tokens, 2);
  EXPECT_EQ(*events[2].cached_tokens, 4);
  EXPECT_TRUE(events[3].done);
  EXPECT_EQ(p.pending(), 0u);
}

TEST(SseParser, ChatDeltasAndRoleOnlyChunks) {
  SseParser p;
  auto ev = p.feed(
      "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"!\"}}]}\n\ndata: [DO");
  ASSERT_EQ(ev.size(), 2u);  // the role-only chunk carries nothing
  EXPECT_EQ(ev[0].text, "Hi");
  EXPECT_EQ(ev[1].text, "!");
  auto rest = p.feed("NE]\n\n");
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_TRUE(rest[0].done);
}

TEST(SseParser, ErrorsInTheStream) {
  SseParser p;
  auto ev = p.feed("data: {\"error\":{\"message\":\"out of memory\",\"code\":500}}\n\ndata: {oops\n\n");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].error, "out of memory");
  EXPECT_NE(ev[1].error.find("malformed SSE data"), std::string::npos);
}

}  // namespace
}  // namespace turbine::bench
