// HTTP round trips over loopback against OpenAiServer + FakeBackend: responses, SSE framing
// byte for byte, stop strings, n, errors, disconnects, concurrency, curl (echo and logprobs:
// openai_logprobs_test.cc).
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "test_client.h"

namespace turbine::frontend::testing {
namespace {

using json = nlohmann::json;

TEST(OpenAiServer, ListsModels) {
  ServerFixture f(fastBackend());
  auto r = get(f.port, "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "fake-model");
  EXPECT_EQ(j["data"][0]["object"], "model");
}

TEST(OpenAiServer, ChatNonStreaming) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions", kChatHi + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  auto j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "fake-model");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], kChatHiPromptTokens);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], kChatHiPromptTokens + 5);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  auto got = f.backend->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].stop.max_tokens, 5);
  EXPECT_EQ(got[0].prompt_token_ids.size(), static_cast<size_t>(kChatHiPromptTokens));
}

TEST(OpenAiServer, ChatStreamingFramingIsExact) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions", kChatHi + R"(,"stream":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  auto events = sseEvents(r.body);
  ASSERT_FALSE(events.empty());
  auto first = json::parse(events[0]);
  std::string head = R"({"id":")" + first["id"].get<std::string>() +
                     R"(","object":"chat.completion.chunk","created":)" +
                     std::to_string(first["created"].get<int64_t>()) +
                     R"(,"model":"fake-model","choices":[)";
  std::string expected = "data: " + head +
      R"({"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})" "\n\n";
  for (char ch : std::string("Hello")) {
    expected += "data: " + head + R"({"index":0,"delta":{"content":")" + std::string(1, ch) +
                R"("},"logprobs":null,"finish_reason":null}]})" "\n\n";
  }
  expected += "data: " + head + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]})" "\n\n";
  expected += "data: [DONE]\n\n";
  EXPECT_EQ(r.body, expected);
}

TEST(OpenAiServer, StreamIncludeUsage) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions",
                kChatHi + R"(,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = sseEvents(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    auto j = json::parse(events[i]);
    ASSERT_TRUE(j.contains("usage")) << events[i];
    EXPECT_TRUE(j["usage"].is_null());
  }
  auto usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 5);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], kChatHiPromptTokens);
  EXPECT_NE(events[events.size() - 2].find(R"("choices":[],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}}})"),
            std::string::npos);
}

TEST(OpenAiServer, CompletionsTextAndTokenPrompts) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/completions",
                R"({"model":"fake-model","prompt":["abc",[1,2,3,4]],"max_tokens":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["text"], "Hel");
  EXPECT_EQ(j["choices"][1]["index"], 1);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4 + 4);  // "abc" + BOS, and 4 ids
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  auto got = f.backend->received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].prompt_token_ids, (std::vector<int32_t>{FakeBackend::kBos, 'a', 'b', 'c'}));
  EXPECT_EQ(got[1].prompt_token_ids, (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(OpenAiServer, CompletionsStreaming) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"x","max_tokens":4,"stream":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = sseEvents(r.body);
  ASSERT_EQ(events.size(), 6u);  // 4 text chunks, finish, [DONE]
  std::string text;
  for (size_t i = 0; i < 4; ++i) {
    auto j = json::parse(events[i]);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
    text += j["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, "Hell");
  EXPECT_EQ(json::parse(events[4])["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events[5], "[DONE]");
}

TEST(OpenAiServer, StopStringIsHeldBackAndCut) {
  ServerFixture f(fastBackend());
  // Script "Hello world! ": stop "o w" begins at the 5th token and spans three tokens.
  auto r = post(f.port, "/v1/chat/completions",
                R"({"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":true,"stop":["o w","zzz"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = sseEvents(r.body);
  std::string text;
  std::string finish;
  for (const auto& e : events) {
    if (e == "[DONE]") continue;
    auto j = json::parse(e);
    auto& c = j["choices"][0];
    if (c["delta"].contains("content")) {
      std::string piece = c["delta"]["content"];
      EXPECT_EQ(piece.find('o'), std::string::npos) << "partial stop string leaked: " << piece;
      text += piece;
    }
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(text, "Hell");
  EXPECT_EQ(finish, "stop");
  auto id = f.backend->received().at(0).request_id;
  EXPECT_TRUE(f.backend->waitAborted(id, std::chrono::seconds(2)));
  // Non-streaming, with a stop string that never matches: held text is flushed at the end.
  auto r2 = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"x","max_tokens":5,"stop":"lo!"})");
  EXPECT_EQ(r2.json()["choices"][0]["text"], "Hello");
  EXPECT_EQ(r2.json()["choices"][0]["finish_reason"], "length");
}

// Tool calling (tools + tool_choice "auto", --tool-call-parser hermes): a model that writes a
// call gets it back as tool_calls, whole or streamed; the tools and a tool conversation reach
// the template.
const std::string kWeatherCall =
    "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
const std::string kToolsChat = R"({"model":"fake-model","max_tokens":200,
    "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
    "messages":[{"role":"user","content":"Paris?"}])";

TEST(OpenAiServer, ToolCallsWholeAndStreamed) {
  FakeBackendOptions o = fastBackend();
  o.script = kWeatherCall;
  o.eos_after_script = true;
  OpenAiServerOptions so;
  so.tool_call_format = ToolCallFormat::kHermes;
  ServerFixture f(o, so);

  auto r = post(f.port, "/v1/chat/completions", kToolsChat + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  const auto& choice = j["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "Checking.\n");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  const auto& call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  // The template saw the tools.
  const auto prompt = f.backend->received().at(0).prompt_token_ids;
  const std::string text(prompt.begin(), prompt.end());
  EXPECT_EQ(text.rfind(R"(<|tools|>[{"type":"function","function":{"name":"get_weather")", 0), 0u) << text;

  auto s = post(f.port, "/v1/chat/completions", kToolsChat + R"(,"stream":true})");
  ASSERT_EQ(s.status, 200) << s.body;
  std::string content, finish;
  json calls;
  for (const auto& e : sseEvents(s.body)) {
    if (e == "[DONE]") continue;
    auto c = json::parse(e)["choices"][0];
    if (c["delta"].contains("content")) {
      const std::string piece = c["delta"]["content"];
      EXPECT_EQ(piece.find('<'), std::string::npos) << "a call leaked into content: " << piece;
      content += piece;
    }
    if (c["delta"].contains("tool_calls")) calls = c["delta"]["tool_calls"];
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(content, "Checking.\n");
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));

  // parallel_tool_calls false: only the first of two calls.
  FakeBackendOptions two = o;
  two.script = kWeatherCall + "\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  ServerFixture f2(two, so);
  auto both = post(f2.port, "/v1/chat/completions", kToolsChat + "}");
  ASSERT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(both.json()["choices"][0]["message"]["tool_calls"].size(), 2u);
  auto first = post(f2.port, "/v1/chat/completions", kToolsChat + R"(,"parallel_tool_calls":false})");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(first.json()["choices"][0]["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(first.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");

  // tool_choice "none": the tools still reach the template, the output is plain content.
  auto n = post(f.port, "/v1/chat/completions", kToolsChat + R"(,"tool_choice":"none"})");
  ASSERT_EQ(n.status, 200) << n.body;
  EXPECT_EQ(n.json()["choices"][0]["message"]["content"], kWeatherCall);
  EXPECT_EQ(n.json()["choices"][0]["finish_reason"], "stop");
}

// Mistral's [TOOL_CALLS] is a special token, which the detokenizer skips: the frontend puts its
// text back for the parser (without that the call would come back as content).
TEST(OpenAiServer, MistralToolCallsWithASpecialMarkerToken) {
  FakeBackendOptions o = fastBackend();
  o.special_tokens = {"[TOOL_CALLS]"};
  o.script = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]";
  o.eos_after_script = true;
  OpenAiServerOptions so;
  so.tool_call_format = ToolCallFormat::kMistral;
  ServerFixture f(o, so);
  for (const char* stream : {"false", "true"}) {
    auto r = post(f.port, "/v1/chat/completions", kToolsChat + R"(,"stream":)" + stream + "}");
    ASSERT_EQ(r.status, 200) << r.body;
    std::string body = r.body;
    EXPECT_NE(body.find(R"("name":"get_weather")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("finish_reason":"tool_calls")"), std::string::npos) << body;
    EXPECT_EQ(body.find("TOOL_CALLS"), std::string::npos) << body;
  }
  // Without tools the special token stays skipped, as in any other output.
  auto plain = post(f.port, "/v1/chat/completions", R"({"model":"fake-model","max_tokens":200,"messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.json()["choices"][0]["message"]["content"].get<std::string>().rfind("[{\"name\"", 0), 0u);
}

// --reasoning-parser: the reasoning goes to reasoning_content (delta.reasoning_content when
// streamed), the answer to content; with tools, the calls are read from the answer only.
TEST(OpenAiServer, ReasoningContentWholeAndStreamed) {
  FakeBackendOptions o = fastBackend();
  o.script = "<think>\nCheck the weather.\n</think>\n\nSunny.";
  o.eos_after_script = true;
  OpenAiServerOptions so;
  so.reasoning_format = ReasoningFormat::kQwen3;
  ServerFixture f(o, so);
  const std::string body = R"({"model":"fake-model","max_tokens":200,"messages":[{"role":"user","content":"x"}])";
  auto r = post(f.port, "/v1/chat/completions", body + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  auto msg = r.json()["choices"][0]["message"];
  EXPECT_EQ(msg["reasoning_content"], "\nCheck the weather.\n");
  EXPECT_EQ(msg["content"], "\n\nSunny.");
  auto s = post(f.port, "/v1/chat/completions", body + R"(,"stream":true})");
  ASSERT_EQ(s.status, 200) << s.body;
  std::string reasoning, content;
  for (const auto& e : sseEvents(s.body)) {
    if (e == "[DONE]") continue;
    auto d = json::parse(e)["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  EXPECT_EQ(reasoning, "\nCheck the weather.\n");
  EXPECT_EQ(content, "\n\nSunny.");

  FakeBackendOptions t = o;
  t.script = "<think>use the tool</think>" + kWeatherCall;
  so.tool_call_format = ToolCallFormat::kHermes;
  ServerFixture g(t, so);
  auto c = post(g.port, "/v1/chat/completions", kToolsChat + "}");
  ASSERT_EQ(c.status, 200) << c.body;
  auto choice = c.json()["choices"][0];
  EXPECT_EQ(choice["message"]["reasoning_content"], "use the tool");
  EXPECT_EQ(choice["message"]["content"], "Checking.\n");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
}

// chat_template_kwargs (Qwen3's enable_thinking, ...) and documents reach the template as its
// variables, in the client's key order, for chat and /tokenize; the template's own are refused.
TEST(OpenAiServer, ChatTemplateKwargsAndDocuments) {
  ServerFixture f(fastBackend());
  const std::string body = R"({"model":"fake-model","max_tokens":2,"messages":[{"role":"user","content":"x"}],
      "chat_template_kwargs":{"enable_thinking":false,"b":1,"a":2},"documents":[{"title":"t","text":"d"}]})";
  auto r = post(f.port, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto prompt = f.backend->received().at(0).prompt_token_ids;
  const std::string text(prompt.begin(), prompt.end());
  const std::string context = R"(<|context|>{"enable_thinking":false,"b":1,"a":2,"documents":[{"title":"t","text":"d"}]})";
  EXPECT_EQ(text.rfind(context + "\n", 0), 0u) << text;
  auto t = post(f.port, "/tokenize", body).json();
  EXPECT_EQ(t["count"], static_cast<int>(prompt.size()));
  for (const auto& [extra, param] : {std::pair{R"("chat_template_kwargs":{"add_generation_prompt":false})",
                                               "chat_template_kwargs.add_generation_prompt"},
                                     std::pair{R"("chat_template_kwargs":[1])", "chat_template_kwargs"},
                                     std::pair{R"("documents":[1])", "documents[0]"}}) {
    auto bad = post(f.port, "/v1/chat/completions",
                    std::string(R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],)") + extra + "}");
    EXPECT_EQ(bad.status, 400) << bad.body;
    EXPECT_NE(bad.body.find(std::string("\"param\":\"") + param + "\""), std::string::npos) << bad.body;
  }
}

TEST(OpenAiServer, ToolConversationReachesTheTemplate) {
  OpenAiServerOptions so;
  so.tool_call_format = ToolCallFormat::kHermes;
  ServerFixture f(fastBackend(), so);
  auto r = post(f.port, "/v1/chat/completions", R"({"model":"fake-model","max_tokens":3,"messages":[
      {"role":"user","content":"Paris?"},
      {"role":"assistant","tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18 C"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["message"]["content"], "Hel");  // no tools: no calls read
  const auto prompt = f.backend->received().at(0).prompt_token_ids;
  const std::string text(prompt.begin(), prompt.end());
  EXPECT_NE(text.find(R"(<|assistant|>[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}])"),
            std::string::npos) << text;
  EXPECT_NE(text.find("<|tool|>[call_1]18 C\n"), std::string::npos) << text;
}

TEST(OpenAiServer, NEqualsTwo) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions", kChatHi + R"(,"n":2,"seed":0})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][1]["index"], 1);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(j["choices"][1]["message"]["content"], "ello ");  // seed + 1
  EXPECT_EQ(j["usage"]["completion_tokens"], 10);
  EXPECT_EQ(j["usage"]["prompt_tokens"], kChatHiPromptTokens);  // the prompt counts once
  // Streaming: a role delta for each index first.
  auto s = post(f.port, "/v1/chat/completions", kChatHi + R"(,"n":2,"stream":true})");
  auto events = sseEvents(s.body);
  EXPECT_EQ(json::parse(events[0])["choices"][0]["index"], 0);
  EXPECT_EQ(json::parse(events[1])["choices"][0]["index"], 1);
  EXPECT_EQ(json::parse(events[1])["choices"][0]["delta"]["role"], "assistant");
  int finishes = 0;
  for (const auto& e : events) {
    if (e != "[DONE]" && !json::parse(e)["choices"][0]["finish_reason"].is_null()) ++finishes;
  }
  EXPECT_EQ(finishes, 2);
}

void expectError(const ClientResponse& r, int status, const std::string& param = "") {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = r.json();
  ASSERT_TRUE(j.is_object()) << r.body;
  ASSERT_TRUE(j.contains("error")) << r.body;
  auto& e = j["error"];
  EXPECT_TRUE(e["message"].is_string());
  EXPECT_TRUE(e["type"].is_string());
  ASSERT_TRUE(e.contains("param"));
  ASSERT_TRUE(e.contains("code"));
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r.body;
  }
}

TEST(OpenAiServer, ErrorsAreOpenAiObjects) {
  ServerFixture f(fastBackend());
  expectError(post(f.port, "/v1/chat/completions", "{not json"), 400);
  expectError(post(f.port, "/v1/chat/completions", kChatHi + R"(,"temperature":"hot"})"), 400, "temperature");
  expectError(post(f.port, "/v1/chat/completions", kChatHi + R"(,"temperature":3})"), 400, "temperature");
  expectError(post(f.port, "/v1/chat/completions", kChatHi + R"(,"n":0})"), 400, "n");
  expectError(post(f.port, "/v1/chat/completions", kChatHi + R"(,"stop":[1]})"), 400, "stop[0]");
  expectError(post(f.port, "/v1/chat/completions",
                   R"({"model":"fake-model","messages":[{"role":"robot","content":"x"}]})"), 400, "messages[0].role");
  expectError(post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":[1,999999]})"), 400);
  auto unknown_model = post(f.port, "/v1/chat/completions",
                            R"({"model":"nope","messages":[{"role":"user","content":"x"}]})");
  expectError(unknown_model, 404, "model");
  EXPECT_EQ(unknown_model.json()["error"]["code"], "model_not_found");
  expectError(post(f.port, "/v1/nothing", "{}"), 404);
  expectError(get(f.port, "/v2/models"), 404);
  expectError(get(f.port, "/v1/chat/completions"), 405);
  // A template's raise_exception is a 400 with its message.
  auto raised = post(f.port, "/v1/chat/completions",
                     R"({"model":"fake-model","messages":[{"role":"user","content":"RAISE_EXCEPTION"}]})");
  expectError(raised, 400);
  EXPECT_NE(raised.body.find("Conversation roles must alternate"), std::string::npos);
}

TEST(OpenAiServer, AutoToolChoiceNeedsAParser) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions", kToolsChat + "}");
  expectError(r, 400, "tool_choice");
  EXPECT_NE(r.body.find("--enable-auto-tool-choice"), std::string::npos) << r.body;
  EXPECT_EQ(post(f.port, "/v1/chat/completions", kToolsChat + R"(,"tool_choice":"none"})").status, 200);
}

// tool_choice "required" / a named function: the engine is asked to shape the output as the
// calls (a constraint reaches the backend) and the output comes back as tool_calls, without a
// --tool-call-parser, finishing with the engine's reason (as vLLM).
TEST(OpenAiServer, ForcedToolChoicesComeBackAsToolCalls) {
  FakeBackendOptions o = fastBackend();
  o.script = R"([{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}])";
  o.eos_after_script = true;
  ServerFixture f(o);
  auto r = post(f.port, "/v1/chat/completions", kToolsChat + R"(,"tool_choice":"required"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto choice = r.json()["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_TRUE(choice["message"]["content"].is_null()) << choice.dump();
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["arguments"], R"({"city":"Paris","days":2})");
  const auto constraint = f.backend->received().at(0).constraint;
  ASSERT_TRUE(constraint);
  EXPECT_EQ(constraint->kind, structured::OutputConstraint::Kind::kJsonSchema);
  EXPECT_NE(constraint->spec.find(R"("minItems":1)"), std::string::npos) << constraint->spec;

  auto s = post(f.port, "/v1/chat/completions", kToolsChat + R"(,"tool_choice":"required","stream":true})");
  ASSERT_EQ(s.status, 200) << s.body;
  json calls;
  for (const auto& e : sseEvents(s.body)) {
    if (e == "[DONE]") continue;
    auto c = json::parse(e)["choices"][0];
    if (c["delta"].contains("content")) {
      EXPECT_EQ(c["delta"]["content"], "") << e;  // nothing leaks
    }
    if (c["delta"].contains("tool_calls")) calls = c["delta"]["tool_calls"];
  }
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["function"]["arguments"], R"({"city":"Paris","days":2})");

  FakeBackendOptions o2 = fastBackend();
  o2.script = R"({"city": "Oslo"})";
  o2.eos_after_script = true;
  ServerFixture f2(o2);
  auto named = post(f2.port, "/v1/chat/completions",
                    kToolsChat + R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}}})");
  ASSERT_EQ(named.status, 200) << named.body;
  auto nc = named.json()["choices"][0];
  ASSERT_EQ(nc["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(nc["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(nc["message"]["tool_calls"][0]["function"]["arguments"], R"({"city":"Oslo"})");
  EXPECT_EQ(f2.backend->received().at(0).constraint->spec, R"({"type":"object"})");  // its parameters
}

// response_format, guided_* and structured_outputs reach the backend as the request's constraint.
TEST(OpenAiServer, StructuredOutputReachesTheBackend) {
  ServerFixture f(fastBackend());
  auto r = post(f.port, "/v1/chat/completions",
                R"({"model":"fake-model","max_tokens":3,"messages":[{"role":"user","content":"x"}],
                    "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"enum":["b"]}}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto c = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"x","max_tokens":3,"guided_regex":"b+"})");
  ASSERT_EQ(c.status, 200) << c.body;
  const auto received = f.backend->received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].constraint, (structured::OutputConstraint{structured::OutputConstraint::Kind::kJsonSchema,
                                                                   R"({"enum":["b"]})"}));
  EXPECT_EQ(received[1].constraint, (structured::OutputConstraint{structured::OutputConstraint::Kind::kRegex, "b+"}));
  auto bad = post(f.port, "/v1/completions", R"j({"model":"fake-model","prompt":"x","guided_regex":"(?=a)"})j");
  expectError(bad, 400, "guided_regex");
  auto g = post(f.port, "/v1/completions",
                R"({"model":"fake-model","prompt":"x","max_tokens":3,"guided_grammar":"root ::= [0-9]+"})");
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(f.backend->received().at(2).constraint,
            (structured::OutputConstraint{structured::OutputConstraint::Kind::kGrammar, "root ::= [0-9]+"}));
  auto bad_grammar = post(f.port, "/v1/chat/completions",
                          R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],
                              "structured_outputs":{"grammar":"start: \"a\" x"}})");
  expectError(bad_grammar, 400, "structured_outputs.grammar");
  EXPECT_NE(bad_grammar.body.find("'x' is not defined"), std::string::npos) << bad_grammar.body;
}

TEST(OpenAiServer, InvalidUtf8Is400) {
  ServerFixture f(fastBackend());
  std::string body = R"({"model":"fake-model","prompt":"bad )" + std::string("\xC3\x28") + R"("})";
  auto r = post(f.port, "/v1/completions", body);
  expectError(r, 400);
  EXPECT_NE(r.body.find("UTF-8"), std::string::npos);
}

TEST(OpenAiServer, PromptLongerThanContextSaysBothLengths) {
  FakeBackendOptions o = fastBackend();
  o.max_model_len = 32;
  ServerFixture f(o);
  auto r = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":")" + std::string(40, 'a') + R"("})");
  expectError(r, 400, "prompt");
  EXPECT_NE(r.body.find("32"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("41"), std::string::npos) << r.body;
  auto r2 = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"abc","max_tokens":40})");
  expectError(r2, 400, "prompt");
  EXPECT_NE(r2.body.find("44"), std::string::npos) << r2.body;
}

TEST(OpenAiServer, BodyLimitIs413) {
  OpenAiServerOptions so;
  so.http.max_body_bytes = 1024;
  ServerFixture f(fastBackend(), so);
  auto r = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":")" + std::string(4096, 'a') + R"("})");
  expectError(r, 413);
  auto ok = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"a","max_tokens":1})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST(OpenAiServer, ApiKeyRequired) {
  OpenAiServerOptions so;
  so.api_key = "sekret";
  ServerFixture f(fastBackend(), so);
  expectError(post(f.port, "/v1/chat/completions", kChatHi + "}"), 401);
  expectError(post(f.port, "/v1/chat/completions", kChatHi + "}", {{"Authorization", "Bearer wrong"}}), 401);
  auto ok = post(f.port, "/v1/chat/completions", kChatHi + "}", {{"Authorization", "Bearer sekret"}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(get(f.port, "/health").status, 200);  // health and metrics stay open
}

TEST(OpenAiServer, QueueFullIs429AndUnavailableIs503WithRetryAfter) {
  OpenAiServerOptions so;
  so.retry_after_s = 3;
  ServerFixture f(fastBackend(), so);
  f.backend->setMaxRunning(0);
  auto r = post(f.port, "/v1/chat/completions", kChatHi + "}");
  expectError(r, 429);
  EXPECT_EQ(r.headers["retry-after"], "3");
  f.backend->setMaxRunning(1);  // n=2: the second sequence is refused, the first aborted
  auto r2 = post(f.port, "/v1/chat/completions", kChatHi + R"(,"n":2,"stream":true})");
  expectError(r2, 429);
  EXPECT_EQ(f.backend->aborted().size(), 1u);
  f.backend->setMaxRunning(-1);
  f.backend->setUnavailable(true);
  auto r3 = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"a"})");
  expectError(r3, 503);
  EXPECT_EQ(r3.headers["retry-after"], "3");
  // Turned away, they are still demand: the planner counts them.
  auto m = get(f.port, "/metrics");
  EXPECT_NE(m.body.find("turbine_requests_refused_total 3\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("turbine_requests_admitted_total 0\n"), std::string::npos);
}

TEST(OpenAiServer, DisconnectMidStreamAbortsOnBackend) {
  FakeBackendOptions o;
  o.token_interval = std::chrono::milliseconds(2);
  ServerFixture f(o);
  {
    TestClient c(f.port);
    std::string body = kChatHi.substr(0, kChatHi.size() - 1) + R"(2000,"stream":true})";
    std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    net::write(c.socket(), net::buffer(req));
    char buf[512];
    size_t got = c.socket().read_some(net::buffer(buf));  // the stream has started
    EXPECT_GT(got, 0u);
    ASSERT_EQ(f.backend->received().size(), 1u);
  }  // the client socket closes here
  auto id = f.backend->received().at(0).request_id;
  EXPECT_TRUE(f.backend->waitAborted(id, std::chrono::seconds(2)));
  for (int i = 0; i < 200 && f.backend->running() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(f.backend->running(), 0u);
  EXPECT_EQ(f.server->metrics().requestCount("/v1/chat/completions", 499), 1u);
}

// Connects with a 64 KiB receive window and sends a streaming completion of n choices of
// `tokens` tokens each (ignore_eos), without reading. A small window fills fast. (Not smaller:
// at 4 KiB the kernel drops loopback segments whose buffer size exceeds the window and
// retransmits with backoff, stalling a test for minutes.)
void startLargeStream(tcp::socket& sock, uint16_t port, int n, int tokens) {
  sock.open(tcp::v4());
  sock.set_option(net::socket_base::receive_buffer_size(64 << 10));
  sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  const std::string body = R"({"model":"fake-model","prompt":"p","stream":true,"ignore_eos":true,"n":)" +
                           std::to_string(n) + R"(,"max_tokens":)" + std::to_string(tokens) + "}";
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  net::write(sock, net::buffer(req));
}

// write_timeout means "no progress for that long": a client that reads a large backlog slowly
// but steadily, for much longer than the timeout in all, must get the whole stream.
TEST(OpenAiServer, SteadySlowReaderOutlivesTheWriteTimeout) {
  FakeBackendOptions o;
  o.token_interval = std::chrono::microseconds(10);
  o.max_model_len = 40000;
  OpenAiServerOptions so;
  so.http.write_timeout = std::chrono::milliseconds(300);
  ServerFixture f(o, so);
  constexpr int kTokens = 6000, kN = 8;  // ~7 MB of SSE: more than the kernel's 4 MiB send buffer
  net::io_context ioc;
  tcp::socket sock(ioc);
  startLargeStream(sock, f.port, kN, kTokens);
  // At most 64 KiB every 15 ms (~4 MB/s), never pausing longer: the backend produces far faster,
  // so ~3 MB queue up in the server beyond the socket buffers and take several write timeouts
  // to drain.
  std::string raw;
  const auto t0 = std::chrono::steady_clock::now();
  char buf[64 << 10];
  for (;;) {
    beast::error_code ec;
    size_t n = sock.read_some(net::buffer(buf), ec);
    raw.append(buf, n);
    if (ec || raw.ends_with("0\r\n\r\n")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GT(took, 2 * so.http.write_timeout) << "the backlog drained too fast to test the timeout";
  ASSERT_TRUE(raw.ends_with("0\r\n\r\n")) << "the stream was cut after " << raw.size() << " bytes";
  EXPECT_NE(raw.find("data: [DONE]"), std::string::npos);
  size_t finishes = 0;
  for (size_t at = raw.find("\"finish_reason\":\"length\""); at != std::string::npos;
       at = raw.find("\"finish_reason\":\"length\"", at + 1)) {
    ++finishes;
  }
  EXPECT_EQ(finishes, static_cast<size_t>(kN));
}

// ... and a client that stops reading altogether is dropped after write_timeout, its request
// aborted on the backend.
TEST(OpenAiServer, StalledReaderIsDroppedAfterTheWriteTimeout) {
  FakeBackendOptions o;
  o.token_interval = std::chrono::microseconds(100);  // ~10 MB/s: the socket fills in < 1 s
  o.max_model_len = 40000;
  OpenAiServerOptions so;
  so.http.write_timeout = std::chrono::milliseconds(150);
  ServerFixture f(o, so);
  net::io_context ioc;
  tcp::socket sock(ioc);
  startLargeStream(sock, f.port, 8, 30000);  // and never read: generation would last 3 s
  for (int i = 0; i < 400 && f.backend->received().size() < 8; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(f.backend->received().size(), 8u);
  for (const auto& r : f.backend->received()) {
    EXPECT_TRUE(f.backend->waitAborted(r.request_id, std::chrono::seconds(5))) << r.request_id;
  }
  EXPECT_EQ(f.server->metrics().requestCount("/v1/completions", 499), 1u);
}

TEST(OpenAiServer, SixtyFourConcurrentStreamsComplete) {
  ServerFixture f(fastBackend());
  constexpr int kClients = 64;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto r = post(f.port, "/v1/completions",
                    R"({"model":"fake-model","prompt":"p","max_tokens":20,"stream":true,"seed":)" +
                        std::to_string(i) + "}");
      std::string text;
      for (const auto& e : sseEvents(r.body)) {
        if (e != "[DONE]") text += json::parse(e)["choices"][0]["text"].get<std::string>();
      }
      std::string script = "Hello world! ";
      std::string want;
      for (int k = 0; k < 20; ++k) want += script[(i + k) % script.size()];
      if (r.status == 200 && text == want && sseEvents(r.body).back() == "[DONE]") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients);
}

// The client does not read for a while: the socket buffers fill, direct writes come up short,
// the rest goes through the asynchronous write and chunks coalesce behind it. Every byte must
// still arrive in order, and the connection must stay usable.
TEST(OpenAiServer, SlowReaderGetsEveryChunkInOrder) {
  FakeBackendOptions o;
  o.token_interval = std::chrono::microseconds(10);
  o.max_model_len = 40000;
  ServerFixture f(o);
  constexpr int kTokens = 6000, kN = 8;  // ~7 MB of SSE, more than the socket buffers hold
  net::io_context ioc;
  tcp::socket sock(ioc);
  startLargeStream(sock, f.port, kN, kTokens);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // let the server's writes back up
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  beast::flat_buffer buffer;
  beast::error_code ec;
  http::read(sock, buffer, parser, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(parser.get().result_int(), 200u) << parser.get().body();
  auto events = sseEvents(parser.get().body());
  ASSERT_EQ(events.size(), static_cast<size_t>((kTokens + 1) * kN + 1));  // tokens, finishes, [DONE]
  std::vector<std::string> text(kN);
  int finishes = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    auto j = json::parse(events[i]);
    const auto& choice = j["choices"][0];
    text[choice["index"].get<size_t>()] += choice["text"].get<std::string>();
    finishes += choice["finish_reason"] == "length" ? 1 : 0;
  }
  EXPECT_EQ(finishes, kN);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string script = "Hello world! ";
  for (size_t n = 0; n < kN; ++n) {
    ASSERT_EQ(text[n].size(), static_cast<size_t>(kTokens));
    for (size_t k = 0; k < text[n].size(); ++k) {
      ASSERT_EQ(text[n][k], script[k % script.size()]) << "choice " << n << " byte " << k;
    }
  }
  // Keep-alive still works after the backlog.
  net::write(sock, net::buffer(std::string("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")));
  http::response_parser<http::string_body> again;
  http::read(sock, buffer, again, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(again.get().result_int(), 200u);
}

// Connections spread over several event loops; each stream's framing and text stay exact.
TEST(OpenAiServer, ManyStreamsOverFourIoThreads) {
  OpenAiServerOptions so;
  so.http.io_threads = 4;
  ServerFixture f(fastBackend(), so);
  constexpr int kClients = 48;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      TestClient c(f.port);
      for (int round = 0; round < 2; ++round) {
        auto r = c.request("POST", "/v1/chat/completions",
                           R"({"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":12,"n":2,"stream":true,"seed":)" +
                               std::to_string(i) + "}");
        auto events = sseEvents(r.body);
        std::string text[2];
        int finishes = 0;
        for (const auto& e : events) {
          if (e == "[DONE]") continue;
          auto j = json::parse(e);
          const auto& choice = j["choices"][0];
          if (choice["delta"].contains("content")) text[choice["index"].get<int>()] += choice["delta"]["content"].get<std::string>();
          if (!choice["finish_reason"].is_null()) ++finishes;
        }
        std::string script = "Hello world! ", want[2];
        for (int n = 0; n < 2; ++n) {
          for (int k = 0; k < 12; ++k) want[n] += script[static_cast<size_t>(i + n + k) % script.size()];
        }
        if (r.status == 200 && text[0] == want[0] && text[1] == want[1] && finishes == 2 && events.back() == "[DONE]") ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 2 * kClients);
}

TEST(OpenAiServer, KeepAliveServesSeveralRequests) {
  ServerFixture f(fastBackend());
  TestClient c(f.port);
  for (int i = 0; i < 3; ++i) {
    auto r = c.request("POST", "/v1/chat/completions", kChatHi + R"(,"stream":true})");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(sseEvents(r.body).back(), "[DONE]");
  }
  EXPECT_EQ(c.request("GET", "/v1/models").status, 200);
}

TEST(OpenAiServer, TokenizeDetokenizeHealthMetrics) {
  ServerFixture f(fastBackend());
  auto t = post(f.port, "/tokenize", R"({"prompt":"ab"})").json();
  EXPECT_EQ(t["tokens"], json::array({FakeBackend::kBos, 'a', 'b'}));
  EXPECT_EQ(t["count"], 3);
  auto tm = post(f.port, "/tokenize", R"({"messages":[{"role":"user","content":"hi"}]})").json();
  EXPECT_EQ(tm["count"], kChatHiPromptTokens);
  // With tools, counted as the chat request would render them (the fake template's tools line).
  const std::string tools = R"([{"type":"function","function":{"name":"f"}}])";
  auto tt = post(f.port, "/tokenize", R"({"messages":[{"role":"user","content":"hi"}],"tools":)" + tools + "}").json();
  EXPECT_EQ(tt["count"], kChatHiPromptTokens + static_cast<int>(std::string("<|tools|>\n").size() + tools.size()));
  auto bad = post(f.port, "/tokenize", R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"x"}]})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  auto d = post(f.port, "/detokenize", R"({"tokens":[104,105]})").json();
  EXPECT_EQ(d["prompt"], "hi");
  EXPECT_EQ(get(f.port, "/health").status, 200);
  ASSERT_EQ(post(f.port, "/v1/chat/completions", kChatHi + "}").status, 200);
  // The request is counted once its response has been written, which may be just after the
  // client has read it: poll briefly.
  auto m = get(f.port, "/metrics");
  const std::string counted =
      R"(turbine_http_requests_total{endpoint="/v1/chat/completions",status="200"} 1)";
  for (int i = 0; i < 200 && m.body.find(counted) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = get(f.port, "/metrics");
  }
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find(counted), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("turbine_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(m.body.find("turbine_inter_token_latency_seconds_count 4"), std::string::npos);
  EXPECT_NE(m.body.find("turbine_generation_tokens_total 5"), std::string::npos);
  EXPECT_NE(m.body.find("turbine_kv_blocks_total 1000"), std::string::npos);
  EXPECT_NE(m.body.find("turbine_requests_admitted_total 1\n"), std::string::npos);  // the planner's demand
  EXPECT_NE(m.body.find("turbine_requests_refused_total 0\n"), std::string::npos);
}

TEST(OpenAiServer, GracefulShutdownFinishesInFlightStream) {
  FakeBackendOptions o;
  o.token_interval = std::chrono::milliseconds(2);
  ServerFixture f(o);
  ClientResponse r;
  std::thread client([&] {
    r = post(f.port, "/v1/completions", R"({"model":"fake-model","prompt":"p","max_tokens":100,"stream":true})");
  });
  for (int i = 0; i < 400 && f.backend->running() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  f.server->shutdown();
  client.join();
  EXPECT_EQ(r.status, 200);
  auto events = sseEvents(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(events.size(), 102u);
  // No longer accepting.
  EXPECT_THROW(TestClient c(f.port), boost::system::system_error);
}

TEST(OpenAiServer, CurlSeesExactSseAndErrorBodies) {
  if (runCommand("command -v curl").empty()) GTEST_SKIP() << "curl not installed";
  ServerFixture f(fastBackend());
  std::string url = "http://127.0.0.1:" + std::to_string(f.port);
  std::string out = runCommand("curl -sN " + url + "/v1/completions -H 'Content-Type: application/json' -d '" +
                               R"({"model":"fake-model","prompt":"x","max_tokens":2,"stream":true})" + "'");
  auto events = sseEvents(out);
  ASSERT_EQ(events.size(), 4u) << out;
  auto j = json::parse(events[0]);
  std::string head = R"({"id":")" + j["id"].get<std::string>() + R"(","object":"text_completion","created":)" +
                     std::to_string(j["created"].get<int64_t>()) + R"(,"model":"fake-model","choices":[)";
  std::string want = "data: " + head + R"({"index":0,"text":"H","logprobs":null,"finish_reason":null}]})" "\n\n" +
                     "data: " + head + R"({"index":0,"text":"e","logprobs":null,"finish_reason":null}]})" "\n\n" +
                     "data: " + head + R"({"index":0,"text":"","logprobs":null,"finish_reason":"length"}]})" "\n\n" +
                     "data: [DONE]\n\n";
  EXPECT_EQ(out, want);
  std::string err = runCommand("curl -s -w ' %{http_code}' " + url + "/v1/completions -d '{\"model\":\"fake-model\",\"prompt\":\"x\",\"top_p\":0}'");
  EXPECT_EQ(err, R"({"error":{"message":"'top_p': must be > 0 and <= 1, got 0","type":"invalid_request_error","param":"top_p","code":null}} 400)");
  std::string nf = runCommand("curl -s -w ' %{http_code}' " + url + "/nope");
  EXPECT_EQ(nf, R"({"error":{"message":"Not found: /nope","type":"not_found_error","param":null,"code":"not_found"}} 404)");
}

TEST(OpenAiServer, NeverServerErrorForClientInput) {
  ServerFixture f(fastBackend());
  const char* bodies[] = {
      "", "[]", "null", "123", R"({"model":1})", R"({"model":"fake-model"})",
      R"({"model":"fake-model","messages":"hi"})", R"({"model":"fake-model","messages":[]})",
      R"({"model":"fake-model","messages":[{"role":"user"}]})",
      R"({"model":"fake-model","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"logit_bias":{"a":1}})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"logit_bias":{"5":1000}})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":-1})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":1e30})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"seed":18446744073709551615})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}})",
      R"({"model":"fake-model","messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
      R"({"model":"fake-model","prompt":[]})", R"({"model":"fake-model","prompt":[[]]})",
      R"({"model":"fake-model","prompt":[-1]})", R"({"model":"fake-model","prompt":{"a":1}})",
      R"({"model":"fake-model","prompt":"x","logprobs":true})", R"({"model":"fake-model","prompt":"x","n":1000})",
  };
  for (const char* b : {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"}) {
    bool generation = std::string(b).rfind("/v1/", 0) == 0;
    for (const char* body : bodies) {
      auto r = post(f.port, b, body);
      if (generation) {
        EXPECT_GE(r.status, 400) << b << " " << body << " -> " << r.body;
      }
      EXPECT_GT(r.status, 0) << b << " " << body;
      EXPECT_LT(r.status, 500) << b << " " << body << " -> " << r.body;
    }
  }
}

}  // namespace
}  // namespace turbine::frontend::testing
