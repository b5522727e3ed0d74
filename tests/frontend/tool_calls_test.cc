// Tool calls read from model output (hermes and llama3_json), whole and streamed.
#include "frontend/tool_calls.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <random>
#include <set>

namespace turbine::frontend {
namespace {

using json = nlohmann::json;

json args(const ToolCall& c) { return json::parse(c.arguments); }

// r has this content and these calls (name, arguments), in order.
void expectCalls(const ToolCallResult& r, const std::string& content, const std::vector<std::pair<std::string, json>>& calls) {
  EXPECT_EQ(r.content, content);
  ASSERT_EQ(r.calls.size(), calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(r.calls[i].name, calls[i].first);
    EXPECT_EQ(args(r.calls[i]), calls[i].second) << r.calls[i].arguments;
  }
}

// Each text has no call that parses: it comes back whole, as content.
void expectContentOnly(ToolCallFormat format, std::initializer_list<const char*> texts) {
  for (const char* text : texts) {
    const auto r = parseToolCalls(format, text);
    EXPECT_TRUE(r.calls.empty()) << text;
    EXPECT_EQ(r.content, text);
  }
}

TEST(ToolCalls, FormatNames) {
  EXPECT_EQ(toolCallFormatByName("hermes").value(), ToolCallFormat::kHermes);
  EXPECT_EQ(toolCallFormatByName("llama3_json").value(), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(toolCallFormatByName("mistral").value(), ToolCallFormat::kMistral);
  EXPECT_EQ(toolCallFormatByName("pythonic").value(), ToolCallFormat::kPythonic);
  auto bad = toolCallFormatByName("xml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("hermes, llama3_json, mistral, pythonic"), std::string::npos);
}

TEST(ToolCalls, HermesCallsAfterText) {
  const auto r = parseToolCalls(ToolCallFormat::kHermes,
                                "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                "{\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n"
                                "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>trailing");
  EXPECT_EQ(r.content, "Let me look.\n");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(args(r.calls[0]), json({{"city", "Paris"}, {"unit", "c"}}));
  EXPECT_EQ(r.calls[1].name, "get_time");
  EXPECT_EQ(args(r.calls[1]), json({{"tz", "CET"}}));
  EXPECT_EQ(r.calls[0].id.rfind("call_", 0), 0u);
  EXPECT_EQ(r.calls[0].id.size(), 5u + 24u);
  EXPECT_NE(r.calls[0].id, r.calls[1].id);
}

TEST(ToolCalls, HermesUnterminatedLastCallAndNoArguments) {
  const auto r = parseToolCalls(ToolCallFormat::kHermes, "<tool_call>{\"name\": \"now\"}");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "now");
  EXPECT_EQ(r.calls[0].arguments, "{}");
}

TEST(ToolCalls, WhatDoesNotParseIsContent) {
  expectContentOnly(ToolCallFormat::kHermes, {
      "no calls here", "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": </tool_call>",
      "<tool_call>{\"arguments\": {}}</tool_call>", "<tool_call>[1, 2]</tool_call>",
      "<tool_call>{\"name\": \"\"}</tool_call>"});
  expectContentOnly(ToolCallFormat::kLlama3Json, {
      "Paris is sunny.", "{\"name\": \"f\"", "{\"name\": \"f\"} and more", "{\"x\": 1}",
      " {\"name\": \"f\"}; oops"});
}

TEST(ToolCalls, Llama3JsonOneOrSeveral) {
  auto r = parseToolCalls(ToolCallFormat::kLlama3Json,
                          "  {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo {north}\", \"q\": \"a\\\"}\"}}");
  expectCalls(r, "", {{"get_weather", {{"city", "Oslo {north}"}, {"q", "a\"}"}}}});
  r = parseToolCalls(ToolCallFormat::kLlama3Json,
                     "<|python_tag|>{\"name\": \"a\", \"arguments\": {\"x\": 1}}; {\"name\": \"b\", \"parameters\": {}}");
  expectCalls(r, "", {{"a", {{"x", 1}}}, {"b", json::object()}});
  EXPECT_EQ(r.calls.at(1).arguments, "{}");  // no arguments at all: an empty object, as text
}

TEST(ToolCalls, MistralBothForms) {
  // Mistral 7B v0.3 / Nemo: one JSON array; ids are 9 letters and digits (Nemo's template
  // raises on any other id when the call comes back in the conversation).
  auto r = parseToolCalls(ToolCallFormat::kMistral,
                          "Sure. [TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
                          "{\"name\": \"get_time\", \"arguments\": {}}]");
  expectCalls(r, "Sure. ", {{"get_weather", {{"city", "Paris"}}}, {"get_time", json::object()}});
  for (const auto& c : r.calls) {
    EXPECT_EQ(c.id.size(), 9u);
    EXPECT_TRUE(std::all_of(c.id.begin(), c.id.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)); }));
  }
  // Mistral Small 3.2: name[ARGS]{...} per call, an optional [CALL_ID].
  r = parseToolCalls(ToolCallFormat::kMistral,
                     "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo {n}\"}[TOOL_CALLS]get_time[CALL_ID]abc123XYZ[ARGS]{}");
  expectCalls(r, "", {{"get_weather", {{"city", "Oslo {n}"}}}, {"get_time", json::object()}});
  expectContentOnly(ToolCallFormat::kMistral, {
      "[TOOL_CALLS]", "[TOOL_CALLS][]", "[TOOL_CALLS]f[ARGS]{\"a\": ", "[TOOL_CALLS]f{}",
      "[TOOL_CALLS][ARGS]{}", "[TOOL_CALLS]f[ARGS]{} junk", "[TOOL_CALLS][{\"x\": 1}]"});
}

TEST(ToolCalls, PythonicLiteralsBecomeJson) {
  auto r = parseToolCalls(ToolCallFormat::kPythonic,
                          " [get_weather(city='Paris', days=3, metric=True, hours=[6, 12.5], extra=None,"
                          " opts={'a': \"it's\", \"b\": (1, 2)}, note='line\\nnext'), get_time()]\n");
  expectCalls(r, "", {{"get_weather", json::parse(R"({"city": "Paris", "days": 3, "metric": true, "hours": [6, 12.5],
      "extra": null, "opts": {"a": "it's", "b": [1, 2]}, "note": "line\nnext"})")},
                      {"get_time", json::object()}});
  expectCalls(parseToolCalls(ToolCallFormat::kPythonic, "<|python_start|>[f(x=-1)]<|python_end|>"), "",
              {{"f", {{"x", -1}}}});
  expectContentOnly(ToolCallFormat::kPythonic, {
      "It is sunny.", "[]", "[f(x=1)] and more", "[f(x=open('/etc'))]", "[f(1)]", "[f(x='unterminated)]",
      "[f(x=1)", "[f(x=+)]"});
}

// Streaming gives the same content and calls as the whole text, however the text is cut, and
// never sends a byte of a call as content.
void expectStreamMatches(ToolCallFormat format, const std::string& text, uint64_t seed) {
  const ToolCallResult whole = parseToolCalls(format, text);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 20; ++trial) {
    ToolCallStream s(format);
    std::string sent;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min<size_t>(text.size() - i, 1 + rng() % 7);
      sent += s.push(std::string_view(text).substr(i, n));
      i += n;
    }
    ToolCallResult end = s.finish();
    sent += end.content;
    EXPECT_EQ(sent, whole.content) << text;
    ASSERT_EQ(end.calls.size(), whole.calls.size()) << text;
    for (size_t k = 0; k < whole.calls.size(); ++k) {
      EXPECT_EQ(end.calls[k].name, whole.calls[k].name);
      EXPECT_EQ(end.calls[k].arguments, whole.calls[k].arguments);
    }
  }
}

TEST(ToolCalls, StreamMatchesWholeText) {
  uint64_t seed = 1;
  for (const char* text : {"Let me look.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>",
                           "plain text with a < sign and <tool_ but no call", "<tool_call>{\"name\": \"f\"}",
                           "<tool_call>{\"name\": broken}</tool_call> tail", "<tool_cal", ""}) {
    expectStreamMatches(ToolCallFormat::kHermes, text, seed++);
  }
  for (const char* text : {"{\"name\": \"f\", \"parameters\": {\"a\": [1, 2]}}", "  \n{\"name\": \"f\"}; {\"name\": \"g\"}",
                           "<|python_tag|>{\"name\": \"f\"}", "The answer is 4.", "  leading spaces then text",
                           "{not json at all", "<|python", ""}) {
    expectStreamMatches(ToolCallFormat::kLlama3Json, text, seed++);
  }
  for (const char* text : {"Sure. [TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}]",
                           "[TOOL_CALLS]f[ARGS]{\"a\": [1]}[TOOL_CALLS]g[ARGS]{}", "[TOOL_ is not a call",
                           "[TOOL_CALLS] broken", "[TOOL"}) {
    expectStreamMatches(ToolCallFormat::kMistral, text, seed++);
  }
  for (const char* text : {"[f(a='x, y'), g(b=[1, 2])]", "  <|python_start|>[f()]<|python_end|>", "Plain [text]",
                           "[broken(", "<|python"}) {
    expectStreamMatches(ToolCallFormat::kPythonic, text, seed++);
  }
}

TEST(ToolCalls, StreamSendsContentBeforeACallAtOnce) {
  ToolCallStream h(ToolCallFormat::kHermes);
  EXPECT_EQ(h.push("Checking "), "Checking ");
  EXPECT_EQ(h.push("now <tool"), "now ");  // "<tool" may begin a call: held
  EXPECT_EQ(h.push("_call>{\"name\""), "");
  EXPECT_EQ(h.push(": \"f\"}</tool_call>"), "");
  auto r = h.finish();
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);

  ToolCallStream l(ToolCallFormat::kLlama3Json);
  EXPECT_EQ(l.push("  "), "");
  EXPECT_EQ(l.push("Hi"), "  Hi");  // not a call: everything goes out
  EXPECT_EQ(l.push(" {there}"), " {there}");
  EXPECT_TRUE(l.finish().calls.empty());
}

}  // namespace
}  // namespace turbine::frontend
