// Reasoning split from the answer (deepseek_r1, qwen3), whole and streamed.
#include "frontend/reasoning.h"

#include <gtest/gtest.h>

#include <random>

namespace turbine::frontend {
namespace {

TEST(Reasoning, FormatNames) {
  EXPECT_EQ(reasoningFormatByName("deepseek_r1").value(), ReasoningFormat::kDeepSeekR1);
  EXPECT_EQ(reasoningFormatByName("qwen3").value(), ReasoningFormat::kQwen3);
  auto bad = reasoningFormatByName("o1");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("deepseek_r1, qwen3"), std::string::npos);
}

TEST(Reasoning, DeepSeekR1ReasonsUntilTheClosingTag) {
  // The template opened <think> in the prompt: the output starts inside it.
  auto r = splitReasoning(ReasoningFormat::kDeepSeekR1, "Let me add 2 and 2.\n</think>\n\nIt is 4.");
  EXPECT_EQ(r.reasoning, "Let me add 2 and 2.\n");
  EXPECT_EQ(r.content, "\n\nIt is 4.");
  r = splitReasoning(ReasoningFormat::kDeepSeekR1, "<think>\nhmm</think>4");  // a tag of its own
  EXPECT_EQ(r.reasoning, "\nhmm");
  EXPECT_EQ(r.content, "4");
  r = splitReasoning(ReasoningFormat::kDeepSeekR1, "still thinking when max_tokens hit");
  EXPECT_EQ(r.reasoning, "still thinking when max_tokens hit");
  EXPECT_EQ(r.content, "");
}

TEST(Reasoning, Qwen3ReasonsOnlyInsideAnOpeningTag) {
  auto r = splitReasoning(ReasoningFormat::kQwen3, "<think>\nplan\n</think>\n\nAnswer.");
  EXPECT_EQ(r.reasoning, "\nplan\n");
  EXPECT_EQ(r.content, "\n\nAnswer.");
  r = splitReasoning(ReasoningFormat::kQwen3, "Answer without thinking, </think> in it.");
  EXPECT_EQ(r.reasoning, "");
  EXPECT_EQ(r.content, "Answer without thinking, </think> in it.");
  r = splitReasoning(ReasoningFormat::kQwen3, "<think>cut off");
  EXPECT_EQ(r.reasoning, "cut off");
  EXPECT_EQ(r.content, "");
  r = splitReasoning(ReasoningFormat::kQwen3, "<thi");  // a prefix of the tag, then the end
  EXPECT_EQ(r.content, "<thi");
}

TEST(Reasoning, StreamMatchesWholeTextAndNeverLeaksATag) {
  uint64_t seed = 1;
  for (const auto format : {ReasoningFormat::kDeepSeekR1, ReasoningFormat::kQwen3}) {
    for (const char* text : {"<think>\nplan\n</think>\n\nAnswer.", "reason </think> answer", "  <think>a</think>b",
                             "no tags at all", "<think>unclosed", "</thi", "", "<think></think>", "x</think>y</think>z"}) {
      const ReasoningSplit whole = splitReasoning(format, text);
      std::mt19937_64 rng(seed++);
      for (int trial = 0; trial < 20; ++trial) {
        ReasoningStream s(format);
        ReasoningSplit got;
        const std::string_view t(text);
        for (size_t i = 0; i < t.size();) {
          const size_t n = std::min<size_t>(t.size() - i, 1 + rng() % 5);
          ReasoningSplit p = s.push(t.substr(i, n));
          EXPECT_EQ(p.reasoning.find("</think>"), std::string::npos) << text;
          got.reasoning += p.reasoning;
          got.content += p.content;
          i += n;
        }
        ReasoningSplit end = s.finish();
        got.reasoning += end.reasoning;
        got.content += end.content;
        EXPECT_EQ(got.reasoning, whole.reasoning) << text;
        EXPECT_EQ(got.content, whole.content) << text;
      }
    }
  }
}

}  // namespace
}  // namespace turbine::frontend
