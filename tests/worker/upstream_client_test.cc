// The request an upstream worker sends to an OpenAI-compatible engine (vLLM's completions API
// with its extensions). The exchange itself is tested against a stand-in vLLM server in
// tests/fleet/upstream_test.py.
#include "worker/upstream_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

namespace turbine::worker {
namespace {

// A request with every option set away from its default.
runtime::GenerateRequest everyOption() {
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
  return r;
}

// everyOption()'s options as each API names them (the OpenAI body's top level, SGLang's
// sampling_params) and the value sent.
struct SentOption {
  const char* openai;
  const char* sglang;
  nlohmann::json value;
};
const SentOption kSentOptions[] = {
    {"max_tokens", "max_new_tokens", 9},
    {"temperature", "temperature", 0.5f},
    {"top_p", "top_p", 0.9f},
    {"top_k", "top_k", 40},
    {"min_p", "min_p", 0.05f},
    {"seed", "sampling_seed", 123},
    {"repetition_penalty", "repetition_penalty", 1.1f},
    {"presence_penalty", "presence_penalty", 0.25f},
    {"frequency_penalty", "frequency_penalty", -0.5f},
    {"stop_token_ids", "stop_token_ids", {2, 3}},
    {"ignore_eos", "ignore_eos", true},
    {"min_tokens", "min_new_tokens", 4},
};

void expectEveryOption(const nlohmann::json& j, bool sglang) {
  for (const SentOption& o : kSentOptions) {
    const char* name = sglang ? o.sglang : o.openai;
    ASSERT_TRUE(j.contains(name)) << name;
    if (o.value.is_number_float()) {
      EXPECT_FLOAT_EQ(j[name].get<float>(), o.value.get<float>()) << name;
    } else {
      EXPECT_EQ(j[name], o.value) << name;
    }
  }
  EXPECT_FLOAT_EQ(j["logit_bias"]["11"].get<float>(), 2.5f);
}

TEST(UpstreamClient, RequestBodyCarriesTheTokensAndEveryOption) {
  const runtime::GenerateRequest r = everyOption();
  UpstreamOptions o;
  o.model = "m";
  o.max_model_len = 100;
  const nlohmann::json b = UpstreamClient::requestBody(r, o);
  EXPECT_EQ(b["model"], "m");
  EXPECT_EQ(b["prompt"], nlohmann::json({5, 6, 7}));
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["return_token_ids"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  expectEveryOption(b, false);
  EXPECT_EQ(b["cache_salt"], "tenant-a");
}

// SGLang's native /generate: input_ids and its sampling_params names.
TEST(UpstreamClient, SglangRequestBody) {
  runtime::GenerateRequest r = everyOption();
  UpstreamOptions o;
  o.model = "m";
  o.api = UpstreamApi::kSglang;
  o.max_model_len = 100;
  nlohmann::json b = UpstreamClient::requestBody(r, o);
  EXPECT_EQ(b["input_ids"], nlohmann::json({5, 6, 7}));
  EXPECT_EQ(b["stream"], true);
  EXPECT_FALSE(b.contains("prompt"));
  EXPECT_FALSE(b.contains("model"));
  const nlohmann::json& sp = b["sampling_params"];
  expectEveryOption(sp, true);
  EXPECT_FALSE(b.contains("cache_salt"));
  EXPECT_FALSE(sp.contains("cache_salt"));
  r.stop.max_tokens.reset();
  EXPECT_EQ(UpstreamClient::requestBody(r, o)["sampling_params"]["max_new_tokens"], 97);
  // SGLang has no cache salt: a request with one is refused, not sent to a shared cache.
  o.url = "http://127.0.0.1:1";
  auto c = UpstreamClient::create(o);
  ASSERT_TRUE(c.isOk()) << c.status().message();
  EXPECT_EQ((*c)->generate(r, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kInvalidArgument);
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
  r.sampling.logprobs = -1;
  r.sampling.prompt_logprobs = 0;
  EXPECT_EQ((*c)->generate(r, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kInvalidArgument);
  r.sampling.prompt_logprobs = -1;
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

// What the worker's load reports carry: the requests in flight and the blocks they hold (prompt
// and tokens so far), back to nothing when they end.
TEST(UpstreamClient, LoadCountsWhatIsInFlight) {
  // An engine that accepts connections (the kernel's backlog) and never answers.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto c = UpstreamClient::create({.url = url, .model = "m", .block_size = 16});
  ASSERT_TRUE(c.isOk()) << c.status().message();
  std::atomic<int> changes{0};
  (*c)->setOnChange([&] { ++changes; });
  EXPECT_EQ((*c)->load().running, 0);
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  auto sink = [&](runtime::GenerateChunk&& ch) {
    std::lock_guard lock(mu);
    if (ch.finish != runtime::FinishReason::kNone) ++finished;
    cv.notify_all();
  };
  for (int n : {20, 32, 33}) {  // 2, 2 and 3 blocks of 16
    runtime::GenerateRequest r;
    r.request_id = "r" + std::to_string(n);
    r.token_ids.assign(static_cast<size_t>(n), 7);
    ASSERT_TRUE((*c)->generate(r, sink).isOk());
  }
  EXPECT_EQ((*c)->load().running, 3);
  EXPECT_EQ((*c)->load().kv_blocks_used, 7);
  EXPECT_EQ(changes.load(), 3);
  (*c)->abort("r32");
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return finished == 1; }));
  }
  // (the change is signalled after the final chunk)
  for (int i = 0; i < 500 && changes.load() < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(changes.load(), 4);
  EXPECT_EQ((*c)->load().running, 2);
  EXPECT_EQ((*c)->load().kv_blocks_used, 5);
  (*c)->shutdown();  // ends the others (aborted)
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(finished, 3);
  }
  EXPECT_EQ((*c)->load().running, 0);
  EXPECT_EQ((*c)->load().kv_blocks_used, 0);
  ::close(fd);
}

}  // namespace
}  // namespace turbine::worker
