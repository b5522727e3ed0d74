// The request an upstream worker sends to an OpenAI-compatible engine (vLLM's completions API
// with its extensions). The exchange itself is tested against a stand-in vLLM server in
// tests/fleet/upstream_test.py.
#include "worker/upstream_client.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include <gtest/gtest.h>

namespace turbine::worker {
namespace {

TEST(UpstreamClient, RequestBodyCarriesTheTokensAndEveryOption) {
  runtime::GenerateRequest r;
  r.request_id = "r1";
  r.token_ids = {5, 6, 7};
  r.sampling.temperature = 0.5f;
  r.sampling.top_p = 0.9f;
  r.sampling.top_k = 40;
  r.sampling.min_p = 0.05f;
  r.sampling.seed = 123;
  r.sampling.repetition_penalty = 1.1f;
  r.sampling.presence_penalty = 0.25f;
  r.sampling.frequency_penalty = -0.5f;
  r.sampling.logit_bias = {{11, 2.5f}};
  r.stop.max_tokens = 9;
  r.stop.stop_token_ids = {2, 3};
  r.stop.ignore_eos = true;
  r.stop.min_tokens = 4;
  r.cache_salt = "tenant-a";
  UpstreamOptions o;
  o.model = "m";
  o.max_model_len = 100;
  const nlohmann::json b = UpstreamClient::requestBody(r, o);
  EXPECT_EQ(b["model"], "m");
  EXPECT_EQ(b["prompt"], nlohmann::json({5, 6, 7}));
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["return_token_ids"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["max_tokens"], 9);
  EXPECT_FLOAT_EQ(b["temperature"].get<float>(), 0.5f);
  EXPECT_FLOAT_EQ(b["top_p"].get<float>(), 0.9f);
  EXPECT_EQ(b["top_k"], 40);
  EXPECT_FLOAT_EQ(b["min_p"].get<float>(), 0.05f);
  EXPECT_EQ(b["seed"], 123);
  EXPECT_FLOAT_EQ(b["repetition_penalty"].get<float>(), 1.1f);
  EXPECT_FLOAT_EQ(b["presence_penalty"].get<float>(), 0.25f);
  EXPECT_FLOAT_EQ(b["frequency_penalty"].get<float>(), -0.5f);
  EXPECT_FLOAT_EQ(b["logit_bias"]["11"].get<float>(), 2.5f);
  EXPECT_EQ(b["stop_token_ids"], nlohmann::json({2, 3}));
  EXPECT_EQ(b["ignore_eos"], true);
  EXPECT_EQ(b["min_tokens"], 4);
  EXPECT_EQ(b["cache_salt"], "tenant-a");
}

// Unset max_tokens fills the context (vLLM's completions would stop at 16); options left at
// their defaults are not sent.
TEST(UpstreamClient, RequestBodyDefaults) {
  runtime::GenerateRequest r;
  r.token_ids = std::vector<int32_t>(30, 1);
  UpstreamOptions o;
  o.model = "m";
  o.max_model_len = 100;
  nlohmann::json b = UpstreamClient::requestBody(r, o);
  EXPECT_EQ(b["max_tokens"], 70);
  for (const char* k : {"top_k", "min_p", "seed", "repetition_penalty", "presence_penalty", "frequency_penalty",
                        "logit_bias", "stop_token_ids", "ignore_eos", "min_tokens", "cache_salt"}) {
    EXPECT_FALSE(b.contains(k)) << k;
  }
  o.max_model_len = 0;
  EXPECT_FALSE(UpstreamClient::requestBody(r, o).contains("max_tokens"));
}

TEST(UpstreamClient, RefusesWhatItCannotForward) {
  EXPECT_EQ(UpstreamClient::create({.url = "https://x", .model = "m"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(UpstreamClient::create({.url = "http://127.0.0.1:1", .model = ""}).status().code(),
            StatusCode::kInvalidArgument);
  auto c = UpstreamClient::create({.url = "http://127.0.0.1:1", .model = "m"});
  ASSERT_TRUE(c.isOk()) << c.status().message();
  runtime::GenerateRequest r;
  r.request_id = "x";
  r.token_ids = {1};
  r.sampling.logprobs = 2;
  EXPECT_EQ((*c)->generate(r, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kInvalidArgument);
  // Nothing listens on port 1: the request is admitted and ends with an error chunk.
  r.sampling.logprobs = -1;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<runtime::GenerateChunk> last;
  ASSERT_TRUE((*c)->generate(r, [&](runtime::GenerateChunk&& ch) {
                    std::lock_guard lock(mu);
                    if (ch.finish != runtime::FinishReason::kNone) last = std::move(ch);
                    cv.notify_all();
                  }).isOk());
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return last.has_value(); }));
  EXPECT_EQ(last->finish, runtime::FinishReason::kError);
  EXPECT_EQ(last->error.code(), StatusCode::kUnavailable);
  EXPECT_NE(last->error.message().find("127.0.0.1:1"), std::string::npos) << last->error.message();
  EXPECT_FALSE((*c)->health().isOk());
}

}  // namespace
}  // namespace turbine::worker
