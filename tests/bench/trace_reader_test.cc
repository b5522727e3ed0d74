#include "bench/trace_reader.h"

#include <filesystem>

#include <gtest/gtest.h>

namespace turbine::bench {
namespace {

TEST(TraceReader, ParsesMooncakeLines) {
  const std::string text =
      R"({"timestamp": 0, "input_length": 1000, "output_length": 7, "hash_ids": [0, 1]})"
      "\n\n"
      R"({"timestamp": 2500, "input_length": 600, "output_length": 3, "hash_ids": [0, 5]})"
      "\n";
  auto r = parseMooncake(text, "t.jsonl");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].timestamp_ms, 2500);
  EXPECT_EQ((*r)[1].input_length, 600);
  EXPECT_EQ((*r)[1].output_length, 3);
  EXPECT_EQ((*r)[1].hash_ids, (std::vector<int64_t>{0, 5}));
}

TEST(TraceReader, MooncakeErrorNamesTheLine) {
  const std::string text =
      R"({"timestamp": 0, "input_length": 10, "output_length": 7, "hash_ids": [0]})"
      "\n"
      R"({"timestamp": 1, "input_length": "x", "output_length": 7})"
      "\n";
  auto r = parseMooncake(text, "t.jsonl");
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("t.jsonl:2:"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("input_length"), std::string::npos);
  auto bad_json = parseMooncake("{\"timestamp\": 0,\n", "u.jsonl");
  ASSERT_FALSE(bad_json.isOk());
  EXPECT_NE(bad_json.status().message().find("u.jsonl:1:"), std::string::npos);
}

TEST(TraceReader, ParsesAzureCsvRelativeTimes) {
  const std::string text =
      "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
      "2023-11-16 18:15:46.6805900,374,44\r\n"
      "2023-11-16 18:15:48.1805900,20,5\r\n"
      "2023-11-16 18:16:00,1,1\r\n";
  auto r = parseAzureCsv(text, "a.csv");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_DOUBLE_EQ((*r)[0].timestamp_ms, 0.0);
  EXPECT_NEAR((*r)[1].timestamp_ms, 1500.0, 1e-3);
  EXPECT_NEAR((*r)[2].timestamp_ms, 13319.41, 1e-2);
  EXPECT_EQ((*r)[0].input_length, 374);
  EXPECT_EQ((*r)[0].output_length, 44);
}

TEST(TraceReader, AzureMalformedLinesAreNamed) {
  auto r = parseAzureCsv("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,3,4\n"
                         "2023-11-16 18:15:47.1,abc,4\n",
                         "a.csv");
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("a.csv:3:"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("ContextTokens"), std::string::npos);
  auto ts = parseAzureCsv("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-16 18:15:46,3,4\n", "b.csv");
  ASSERT_FALSE(ts.isOk());
  EXPECT_NE(ts.status().message().find("b.csv:2: bad TIMESTAMP"), std::string::npos);
  auto fields = parseAzureCsv("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,3\n", "c.csv");
  ASSERT_FALSE(fields.isOk());
  EXPECT_NE(fields.status().message().find("c.csv:2:"), std::string::npos);
  EXPECT_FALSE(parseAzureCsv("time,a,b\n", "d.csv").isOk());
}

TEST(TraceReader, AzureTimestampIsEpochSeconds) {
  auto t = parseAzureTimestamp("1970-01-02 00:00:01.5");
  ASSERT_TRUE(t.isOk());
  EXPECT_DOUBLE_EQ(*t, 86401.5);
  EXPECT_FALSE(parseAzureTimestamp("2023-11-16T18:15:46.x").isOk());
}

TEST(TraceReader, MissingFileIsNotFound) {
  auto r = readTrace("/nonexistent/trace.jsonl");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(TraceReader, ReadsTheSharedRealTraces) {
  const std::string dir = TURBINE_SOURCE_DIR "/../shared/data/traces";
  if (!std::filesystem::exists(dir + "/mooncake_conversation_trace.jsonl") ||
      !std::filesystem::exists(dir + "/AzureLLMInferenceTrace_conv.csv")) {
    GTEST_SKIP() << "shared traces not present in " << dir;
  }
  auto m = readTrace(dir + "/mooncake_conversation_trace.jsonl");
  ASSERT_TRUE(m.isOk()) << m.status().message();
  EXPECT_EQ(m->size(), 12031u);
  for (const auto& r : *m) {
    ASSERT_EQ(r.hash_ids.size(), static_cast<size_t>((r.input_length + 511) / 512));
  }
  auto a = readTrace(dir + "/AzureLLMInferenceTrace_conv.csv");
  ASSERT_TRUE(a.isOk()) << a.status().message();
  EXPECT_EQ(a->size(), 19366u);
  EXPECT_NEAR(a->back().timestamp_ms / 1000.0, 3501.7, 0.1);
}

}  // namespace
}  // namespace turbine::bench
