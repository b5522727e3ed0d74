// Completions' echo, logprobs and prompt logprobs over loopback against OpenAiServer +
// FakeBackend: the shapes OpenAI and vLLM give them, whole and streamed, and their errors.
#include <gtest/gtest.h>

#include "test_client.h"

namespace turbine::frontend::testing {
namespace {

using json = nlohmann::json;

// echo=true: each choice begins with its prompt's text (token prompts detokenized), whole and
// streamed.
TEST(OpenAiServer, CompletionsEcho) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/completions",
                R"({"model":"fake-model","prompt":["Say: ",[104,105]],"max_tokens":3,"echo":true,"n":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  ASSERT_EQ(j["choices"].size(), 4u);
  EXPECT_EQ(j["choices"][0]["text"], "Say: Hel");
  EXPECT_EQ(j["choices"][1]["text"], "Say: Hel");
  EXPECT_EQ(j["choices"][2]["text"], "hiHel");
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  auto s = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"Say: ","max_tokens":3,"echo":true,"stream":true})");
  ASSERT_EQ(s.status, 200) << s.body;
  std::vector<std::string> pieces;
  for (const auto& e : sseEvents(s.body)) {
    if (e == "[DONE]") continue;
    pieces.push_back(json::parse(e)["choices"][0]["text"]);
  }
  ASSERT_GE(pieces.size(), 2u);
  EXPECT_EQ(pieces[0], "Say: ");  // the prompt first, on its own
  std::string all;
  for (const auto& p : pieces) all += p;
  EXPECT_EQ(all, "Say: Hel");
}

// echo with logprobs (lm-evaluation-harness's loglikelihood request): the prompt's tokens come
// first with the prompt logprobs the backend computed (the first token's null), then the
// generated ones, text offsets running on; whole and streamed; max_tokens 0 echoes the prompt
// alone.
TEST(OpenAiServer, CompletionsEchoWithLogprobs) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/completions",
                R"({"model":"fake-model","prompt":[104,105,33],"max_tokens":2,"echo":true,"logprobs":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto got = f.backend->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sampling.prompt_logprobs, 2);
  EXPECT_EQ(got[0].sampling.logprobs, 2);
  auto j = r.json();
  const auto& c = j["choices"][0];
  EXPECT_EQ(c["text"], "hi!He");
  const auto& lp = c["logprobs"];
  EXPECT_EQ(lp["tokens"], json::parse(R"(["h","i","!","H","e"])"));
  ASSERT_EQ(lp["token_logprobs"].size(), 5u);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_NEAR(lp["token_logprobs"][1].get<double>(), -1.0, 1e-6);  // FakeBackend: -(i % 3 + 1) / 2
  EXPECT_NEAR(lp["token_logprobs"][2].get<double>(), -1.5, 1e-6);
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  // "j" and "k" (FakeBackend's top 2: the next byte values), then the prompt's own "i", which is
  // not among them: completions list the chosen token too, as OpenAI and vLLM (up to k + 1).
  EXPECT_EQ(lp["top_logprobs"][1].size(), 3u);
  EXPECT_TRUE(lp["top_logprobs"][1].contains("j"));
  EXPECT_EQ(lp["top_logprobs"][1]["i"], lp["token_logprobs"][1]);
  EXPECT_EQ(lp["text_offset"], json::parse("[0,1,2,3,4]"));
  EXPECT_FALSE(c.contains("prompt_logprobs"));  // only when asked by name
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);

  auto s = post(f.port, "/v1/completions",
                R"({"model":"fake-model","prompt":[104,105],"max_tokens":2,"echo":true,"logprobs":0,"stream":true})");
  ASSERT_EQ(s.status, 200) << s.body;
  auto events = sseEvents(s.body);
  ASSERT_GE(events.size(), 3u);
  auto first = json::parse(events[0])["choices"][0];
  EXPECT_EQ(first["text"], "hi");  // the prompt, with its logprobs
  EXPECT_EQ(first["logprobs"]["tokens"], json::parse(R"(["h","i"])"));
  EXPECT_TRUE(first["logprobs"]["token_logprobs"][0].is_null());
  EXPECT_NEAR(first["logprobs"]["token_logprobs"][1].get<double>(), -1.0, 1e-6);
  auto second = json::parse(events[1])["choices"][0];
  EXPECT_EQ(second["logprobs"]["text_offset"], json::parse("[2]"));

  auto only = post(f.port, "/v1/completions",
                   R"({"model":"fake-model","prompt":[104,105,33],"max_tokens":0,"echo":true,"logprobs":1})");
  ASSERT_EQ(only.status, 200) << only.body;
  auto o = only.json();
  EXPECT_EQ(o["choices"][0]["text"], "hi!");
  EXPECT_EQ(o["choices"][0]["logprobs"]["tokens"].size(), 3u);
  EXPECT_EQ(o["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(o["usage"]["completion_tokens"], 0);
  EXPECT_EQ(f.backend->received().back().stop.max_tokens, 1);  // one token, dropped

  auto no_echo = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"x","max_tokens":0})");
  EXPECT_EQ(no_echo.status, 400) << no_echo.body;
  EXPECT_NE(no_echo.body.find("\"param\":\"max_tokens\""), std::string::npos) << no_echo.body;
}

// vLLM's prompt_logprobs: per choice in completions, at the top level in chat; the prompt token
// first with its rank, then the top k; refused with stream and out of range.
TEST(OpenAiServer, PromptLogprobsField) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/completions",
                R"({"model":"fake-model","prompt":[104,105,33],"max_tokens":1,"prompt_logprobs":1})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  const auto& pl = j["choices"][0]["prompt_logprobs"];
  ASSERT_EQ(pl.size(), 3u) << r.body;
  EXPECT_TRUE(pl[0].is_null());
  ASSERT_TRUE(pl[1].contains("105")) << pl[1];
  EXPECT_NEAR(pl[1]["105"]["logprob"].get<double>(), -1.0, 1e-6);
  EXPECT_EQ(pl[1]["105"]["rank"], 2);  // FakeBackend: i % 5 + 1
  EXPECT_EQ(pl[1]["105"]["decoded_token"], "i");
  EXPECT_EQ(pl[1]["106"]["rank"], 1);  // its top 1
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["text"], "H");

  auto c = post(f.port, "/v1/chat/completions", kChatHi + R"(,"prompt_logprobs":0})");
  ASSERT_EQ(c.status, 200) << c.body;
  auto cj = c.json();
  ASSERT_TRUE(cj.contains("prompt_logprobs")) << c.body;
  EXPECT_EQ(cj["prompt_logprobs"].size(), static_cast<size_t>(kChatHiPromptTokens));
  EXPECT_EQ(cj["prompt_logprobs"][1].size(), 1u);  // the prompt token alone

  auto streamed = post(f.port, "/v1/completions",
                       R"({"model":"fake-model","prompt":"x","prompt_logprobs":1,"stream":true})");
  EXPECT_EQ(streamed.status, 400) << streamed.body;
  EXPECT_NE(streamed.body.find("\"param\":\"prompt_logprobs\""), std::string::npos) << streamed.body;
  auto big = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"x","prompt_logprobs":21})");
  EXPECT_EQ(big.status, 400) << big.body;
}

TEST(OpenAiServer, ChatLogprobsShape) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions", kChatHi + R"(,"logprobs":true,"top_logprobs":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto lp = r.json()["choices"][0]["logprobs"];
  ASSERT_TRUE(lp.contains("content")) << lp.dump();
  ASSERT_EQ(lp["content"].size(), 5u);
  EXPECT_EQ(lp["content"][0]["token"], "H");
  EXPECT_EQ(lp["content"][0]["bytes"], json::array({72}));
  EXPECT_TRUE(lp["content"][0]["logprob"].is_number());
  EXPECT_EQ(lp["content"][0]["top_logprobs"].size(), 3u);
  EXPECT_EQ(lp["content"][0]["top_logprobs"][0]["token"], "H");
  EXPECT_EQ(f.backend->received().at(0).sampling.logprobs, 3);
}

TEST(OpenAiServer, CompletionLogprobsShape) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"x","max_tokens":4,"logprobs":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto lp = r.json()["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"H", "e", "l", "l"}));
  EXPECT_EQ(lp["token_logprobs"].size(), 4u);
  EXPECT_EQ(lp["top_logprobs"].size(), 4u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  for (size_t i = 0; i < 4; ++i) {  // each chosen token is listed (here among the top 2 already)
    EXPECT_EQ(lp["top_logprobs"][i][lp["tokens"][i].get<std::string>()], lp["token_logprobs"][i]) << i;
  }
  EXPECT_EQ(lp["text_offset"], json::array({0, 1, 2, 3}));
}

}  // namespace
}  // namespace turbine::frontend::testing
