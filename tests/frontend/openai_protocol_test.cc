#include "frontend/openai_protocol.h"

#include <gtest/gtest.h>

#include "frontend/errors.h"
#include "frontend/openai_responses.h"
#include "structured/matcher.h"

#include <tuple>

namespace turbine::frontend {
namespace {

using json = nlohmann::json;

Result<ChatCompletionRequest> chat(const std::string& body, std::string* param) {
  auto j = parseJsonObject(body);
  if (!j) return j.status();
  return parseChatCompletionRequest(*j, param, body);
}

TEST(OpenAiProtocol, ParsesEveryChatField) {
  std::string param;
  auto r = chat(R"({"model":"m","messages":[{"role":"system","content":"s"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null}],
      "max_completion_tokens":7,"temperature":0.5,"top_p":0.9,"n":2,"stop":"x","seed":42,
      "presence_penalty":1,"frequency_penalty":-1,"logit_bias":{"12":-100},"logprobs":true,
      "top_logprobs":4,"stream":true,"stream_options":{"include_usage":true},"user":"u","top_k":40,
      "min_p":0.1,"repetition_penalty":1.1,"ignore_eos":true,"min_tokens":2,"cache_salt":"t",
      "unknown_field":{"x":1}})", &param);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const auto& c = r->common;
  EXPECT_EQ(r->messages.size(), 3u);
  EXPECT_TRUE(r->messages[1].has_parts);
  EXPECT_EQ(r->messages[1].content, "ab");
  EXPECT_EQ(r->messages[1].parts.size(), 2u);
  EXPECT_EQ(*c.max_tokens, 7);
  EXPECT_DOUBLE_EQ(c.sampling.temperature, 0.5);
  EXPECT_DOUBLE_EQ(c.sampling.top_p, 0.9);
  EXPECT_EQ(c.n, 2);
  EXPECT_EQ(c.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(*c.sampling.seed, 42);
  EXPECT_FLOAT_EQ(c.sampling.logit_bias.at(12), -100.0f);
  EXPECT_EQ(c.sampling.logprobs, 4);
  EXPECT_TRUE(c.stream && c.include_usage && c.ignore_eos);
  EXPECT_EQ(c.sampling.top_k, 40);
  EXPECT_EQ(c.min_tokens, 2);
  EXPECT_EQ(c.cache_salt, "t");
  EXPECT_EQ(c.user, "u");
}

TEST(OpenAiProtocol, DeveloperRoleIsSystemAndUnknownRolesAreRejected) {
  std::string unused;
  auto r = chat(R"({"model":"m","messages":[{"role":"developer","content":"be brief"},
      {"role":"user","content":"hi"}]})", &unused);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[0].content, "be brief");
  std::string param;
  auto bad = chat(R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", &param);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(param, "messages[0].role");
  EXPECT_NE(bad.status().message().find("'wizard'"), std::string::npos) << bad.status().message();
}

// A tool conversation: tools in the client's key order, an assistant's calls with their
// arguments as objects (as templates print them), the tool's answer with its call id.
TEST(OpenAiProtocol, ToolsAndToolMessages) {
  const std::string body = R"({"model":"m","tools":[{"type":"function","function":{"name":"get_weather",
      "description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
      "messages":[{"role":"user","content":"Paris?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18 C"}]})";
  std::string param;
  auto r = chat(body, &param);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->tool_choice, "auto");  // tools given, no tool_choice
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[2].role, "tool");
  EXPECT_EQ(r->messages[2].tool_call_id.value_or(""), "call_1");
  const auto& calls = r->messages[1].tool_calls;
  ASSERT_TRUE(calls.is_array());
  EXPECT_EQ(calls[0]["function"]["arguments"]["city"], "Paris");  // an object now
  EXPECT_EQ(r->tools.dump().substr(0, 40), R"([{"type":"function","function":{"name":")");
  EXPECT_EQ(r->messages[1].tool_calls[0]["function"]["arguments"].dump(), R"({"city":"Paris","unit":"c"})");
  EXPECT_EQ(r->messages[1].tool_calls[0].begin().key(), "id");
  // Without the body's text the keys come sorted (what the order above is taken from).
  auto sorted = parseChatCompletionRequest(json::parse(body), &param);
  ASSERT_TRUE(sorted.isOk());
  EXPECT_EQ(sorted->tools.dump().substr(0, 13), R"([{"function":)");

  auto none = chat(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"none"})", &param);
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ(none->tool_choice, "none");
  EXPECT_TRUE(none->tools.is_null());
  auto empty = chat(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[]})", &param);
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->tool_choice, "none");

  const std::string tools = R"("tools":[{"type":"function","function":{"name":"f"}}])";
  struct Case { std::string body; const char* param; const char* says; };
  const Case cases[] = {
      {R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", "messages[0].tool_call_id", "required"},
      {R"({"model":"m","messages":[{"role":"user","content":"x","tool_calls":[]}]})", "messages[0].tool_calls",
       "assistant"},
      {R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":{}}}]}]})",
       "messages[0].tool_calls[0].function.arguments", "string"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"retrieval"}]})",
       "tools[0].type", "'function'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]})",
       "tools[0].function.parameters", "object"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})", "tool_choice", "needs 'tools'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"})", "tool_choice",
       "needs 'tools'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],)" + tools +
           R"(,"tool_choice":{"type":"function","function":{"name":"g"}}})",
       "tool_choice", "'g' is not among the tools"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],)" + tools +
           R"(,"tool_choice":{"type":"function"}})",
       "tool_choice", "named tool choice"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],)" + tools +
           R"(,"tool_choice":"required","response_format":{"type":"json_object"}})",
       "tool_choice", "cannot be combined"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],)" + tools + R"(,"tool_choice":"sometimes"})",
       "tool_choice", "'sometimes'"},
  };
  for (const Case& c : cases) {
    param.clear();
    auto bad = chat(c.body, &param);
    ASSERT_FALSE(bad.isOk()) << c.body;
    EXPECT_EQ(param, c.param) << c.body;
    EXPECT_NE(bad.status().message().find(c.says), std::string::npos) << bad.status().message();
  }
}

// Structured output: every way of asking becomes one constraint (checked to compile), schemas
// in the client's key order (the order properties are generated in); what cannot be enforced is
// a 400 naming the field.
TEST(OpenAiProtocol, StructuredOutputConstraints) {
  using Kind = structured::OutputConstraint::Kind;
  const std::string msgs = R"({"model":"m","messages":[{"role":"user","content":"x"}],)";
  std::string param;
  auto constraint = [&](const std::string& extra) -> std::optional<structured::OutputConstraint> {
    auto r = chat(msgs + extra + "}", &param);
    EXPECT_TRUE(r.isOk()) << extra << ": " << r.status().toString();
    return r.isOk() ? r->common.constraint : std::nullopt;
  };
  EXPECT_FALSE(constraint(R"("response_format":{"type":"text"})"));
  EXPECT_EQ(constraint(R"("response_format":{"type":"json_object"})"),
            (structured::OutputConstraint{Kind::kJsonSchema, R"({"type":"object"})"}));
  EXPECT_EQ(constraint(R"("response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,
                          "schema":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}}}})"),
            (structured::OutputConstraint{Kind::kJsonSchema,
                                          R"({"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}})"}));
  EXPECT_EQ(constraint(R"("guided_json":{"properties":{"b":{},"a":{}}})"),
            (structured::OutputConstraint{Kind::kJsonSchema, R"({"properties":{"b":{},"a":{}}})"}));
  EXPECT_EQ(constraint(R"("guided_json":"{\"type\": \"array\"}")"),
            (structured::OutputConstraint{Kind::kJsonSchema, R"({"type": "array"})"}));
  EXPECT_EQ(constraint(R"("guided_regex":"[a-z]+")"), (structured::OutputConstraint{Kind::kRegex, "[a-z]+"}));
  EXPECT_EQ(constraint(R"("guided_choice":["yes","no"])"),
            (structured::OutputConstraint{Kind::kChoice, R"(["yes","no"])"}));
  EXPECT_EQ(constraint(R"("structured_outputs":{"regex":"\\d+"})"), (structured::OutputConstraint{Kind::kRegex, "\\d+"}));
  EXPECT_EQ(constraint(R"("guided_grammar":"root ::= [a-z]+")"), (structured::OutputConstraint{Kind::kGrammar, "root ::= [a-z]+"}));
  EXPECT_EQ(constraint(R"("ebnf":"root ::= \"a\"")"), (structured::OutputConstraint{Kind::kGrammar, "root ::= \"a\""}));
  EXPECT_EQ(constraint(R"("regex":"[0-9]+")"), (structured::OutputConstraint{Kind::kRegex, "[0-9]+"}));
  EXPECT_EQ(constraint(R"("structured_outputs":{"grammar":"start: \"y\" | \"n\""})"),
            (structured::OutputConstraint{Kind::kGrammar, "start: \"y\" | \"n\""}));
  EXPECT_EQ(constraint(R"("structured_outputs":{"json_object":true})"),
            (structured::OutputConstraint{Kind::kJsonSchema, R"({"type":"object"})"}));

  // tool_choice "required": an array of {"name", "parameters"} of the tools; named: its parameters.
  const std::string tools = R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",
      "properties":{"q":{"enum":[1,2]}},"required":["q"]}}},{"type":"function","function":{"name":"g"}}],)";
  auto required = constraint(tools + R"("tool_choice":"required","parallel_tool_calls":false)");
  ASSERT_TRUE(required);
  auto g = structured::compileConstraint(*required);
  ASSERT_TRUE(g.isOk());
  auto fits = [&](const std::string& text) {
    structured::Matcher m(*g);
    return m.advance(text) && m.accepting();
  };
  EXPECT_TRUE(fits(R"([{"name": "f", "parameters": {"q": 2}}])"));
  EXPECT_TRUE(fits(R"([{"name": "g", "parameters": {"any": [true]}}])"));
  EXPECT_FALSE(fits(R"([{"name": "f", "parameters": {"q": 3}}])"));
  EXPECT_FALSE(fits(R"([{"name": "h", "parameters": {}}])"));
  EXPECT_FALSE(fits(R"([])"));
  EXPECT_FALSE(fits(R"([{"name": "g", "parameters": {}}, {"name": "g", "parameters": {}}])"));  // not parallel
  auto named = constraint(tools + R"("tool_choice":{"type":"function","function":{"name":"f"}})");
  ASSERT_TRUE(named);
  EXPECT_EQ(named->spec, R"({"type":"object","properties":{"q":{"enum":[1,2]}},"required":["q"]})");

  // Completions read the same fields.
  auto j = parseJsonObject(R"({"model":"m","prompt":"x","guided_choice":["a"]})");
  ASSERT_TRUE(j.isOk());
  auto c = parseCompletionRequest(*j, &param, R"({"model":"m","prompt":"x","guided_choice":["a"]})");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->common.constraint, (structured::OutputConstraint{Kind::kChoice, R"(["a"])"}));

  for (const auto& [extra, want, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {R"("response_format":"json")", "response_format", "object"},
           {R"("response_format":{"type":"xml"})", "response_format.type", "'xml'"},
           {R"("response_format":{"type":"json_schema"})", "response_format.json_schema", "required"},
           {R"("response_format":{"type":"json_schema","json_schema":{"name":"a"}})",
            "response_format.json_schema.schema", "required"},
           {R"("response_format":{"type":"json_schema","json_schema":{"schema":{"type":"number","minimum":1}}})",
            "response_format.json_schema.schema", "'minimum'"},
           {R"("guided_json":"{not json")", "guided_json", "not valid JSON"},
           {R"("guided_regex":"(a")", "guided_regex", "missing ')'"},
           {R"("guided_choice":[])", "guided_choice", "non-empty"},
           {R"("guided_grammar":"root ::= x")", "guided_grammar", "line 1, column 10: 'x' is not defined"},
           {R"("guided_grammar":{"root":"x"})", "guided_grammar", "string"},
           {R"("ebnf":"root ::= [b-a]")", "ebnf", "out of order"},
           {R"("regex":"a","ebnf":"root ::= \"a\"")", "ebnf", "cannot be combined"},
           {R"("structured_outputs":{"grammar":"start: a\na: a \"+\" | b"})", "structured_outputs.grammar",
            "'b' is not defined"},
           {R"("guided_regex":"a","guided_choice":["a"])", "guided_choice", "cannot be combined"},
           {R"("response_format":{"type":"json_object"},"guided_regex":"a")", "guided_regex", "cannot be combined"}}) {
    param.clear();
    auto bad = chat(msgs + extra + "}", &param);
    ASSERT_FALSE(bad.isOk()) << extra;
    EXPECT_EQ(param, want) << extra;
    EXPECT_NE(bad.status().message().find(says), std::string::npos) << bad.status().message();
  }
}

TEST(OpenAiProtocol, RejectsWithParamName) {
  struct Case { const char* extra; const char* param; };
  const Case cases[] = {
      {R"("temperature":2.5)", "temperature"}, {R"("temperature":true)", "temperature"},
      {R"("top_p":0)", "top_p"}, {R"("n":129)", "n"}, {R"("max_tokens":0)", "max_tokens"},
      {R"("max_tokens":1.5)", "max_tokens"}, {R"("presence_penalty":-3)", "presence_penalty"},
      {R"("logit_bias":{"1":101})", "logit_bias.1"}, {R"("top_logprobs":3)", "top_logprobs"},
      {R"("logprobs":true,"top_logprobs":21)", "top_logprobs"}, {R"("stop":[1])", "stop[0]"},
      {R"("stream_options":{"include_usage":true})", "stream_options"},
      {R"("min_tokens":9,"max_tokens":3)", "min_tokens"}, {R"("seed":"x")", "seed"},
      {R"("min_p":2)", "min_p"}, {R"("user":5)", "user"},
  };
  for (const auto& c : cases) {
    std::string param;
    auto r = chat(std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)") + c.extra + "}", &param);
    EXPECT_FALSE(r.isOk()) << c.extra;
    EXPECT_EQ(param, c.param) << c.extra << ": " << r.status().message();
    EXPECT_NE(r.status().message().find(c.param), std::string::npos) << r.status().message();
    EXPECT_EQ(apiErrorFromStatus(r.status(), param).http_status, 400);
  }
}

TEST(OpenAiProtocol, CompletionPromptForms) {
  std::string param;
  auto parse = [&](const std::string& prompt) {
    auto j = parseJsonObject(R"({"model":"m","prompt":)" + prompt + "}");
    return parseCompletionRequest(*j, &param);
  };
  EXPECT_EQ(parse(R"("a")")->prompts.size(), 1u);
  EXPECT_EQ(parse(R"(["a","b"])")->prompts.size(), 2u);
  auto ids = parse("[1,2,3]");
  ASSERT_TRUE(ids.isOk());
  EXPECT_TRUE(ids->prompts[0].is_tokens);
  EXPECT_EQ(ids->prompts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parse("[[1],[2,3]]")->prompts.size(), 2u);
  EXPECT_FALSE(parse("[1,-2]").isOk());
  EXPECT_EQ(param, "prompt[1]");
  EXPECT_FALSE(parse(R"(["a",3])").isOk());
  EXPECT_EQ(param, "prompt[1]");
}

TEST(OpenAiProtocol, Utf8Validation) {
  EXPECT_TRUE(isValidUtf8("plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(isValidUtf8("\xC3"));
  EXPECT_FALSE(isValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(isValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(parseJsonObject("{\"a\":\"\xFF\"}").isOk());
}

TEST(OpenAiResponses, JsonStringEscapesAndReplacesInvalidUtf8) {
  std::string out;
  appendJsonString(out, std::string("a\"\\\n\x01\xC3\xA9\xFF", 8));
  EXPECT_EQ(out, "\"a\\\"\\\\\\n\\u0001\xC3\xA9\xEF\xBF\xBD\"");
  EXPECT_FALSE(json::parse(out, nullptr, false).is_discarded());
}

TEST(OpenAiResponses, DeltaFormatMatchesDeltaEventsByteForByte) {
  const std::vector<std::string> texts = {"Hello", " wor\"ld\\\n", std::string("\x01\xC3\xA9\xFF", 4), "",
                                          std::string(300, 'x') + "\t"};
  for (bool usage_field : {false, true}) {
    ResponseMeta meta{"chatcmpl-abc\"1", 1700000001, "m/\u00e9", usage_field};
    for (int32_t index : {0, 3, 17}) {
      DeltaEventFormat chat = chatDeltaFormat(meta, index);
      DeltaEventFormat completion = completionDeltaFormat(meta, index);
      std::string out = "keep:";
      for (const auto& t : texts) {
        std::string chat_out = "x", completion_out;
        appendDeltaEvent(chat_out, chat, t);
        appendDeltaEvent(completion_out, completion, t);
        EXPECT_EQ(chat_out, "x" + chatDeltaEvent(meta, index, t, false, {})) << t;
        EXPECT_EQ(completion_out, completionDeltaEvent(meta, index, t, false, {}, "")) << t;
        appendDeltaEvent(out, completion, t);
      }
      EXPECT_EQ(out.rfind("keep:data: {\"id\":", 0), 0u);
    }
  }
}

TEST(OpenAiResponses, JsonStringKeepsLongPlainRunsAndEscapesControlBytes) {
  std::string text = std::string(100, 'a') + "\x1f" + std::string(50, 'b') + "\x7f\"";
  std::string out;
  appendJsonString(out, text);
  EXPECT_EQ(out, "\"" + std::string(100, 'a') + "\\u001f" + std::string(50, 'b') + "\x7f\\\"\"");
  EXPECT_EQ(json::parse(out).get<std::string>(), text);
}

TEST(Errors, StatusMapping) {
  EXPECT_EQ(apiErrorFromStatus(invalidArgument("x")).http_status, 400);
  EXPECT_EQ(apiErrorFromStatus(notFound("x")).http_status, 404);
  auto busy = apiErrorFromStatus(resourceExhausted("x"), {}, 2);
  EXPECT_EQ(busy.http_status, 429);
  EXPECT_EQ(busy.retry_after_s, 2);
  EXPECT_EQ(apiErrorFromStatus(unavailable("x")).http_status, 503);
  EXPECT_EQ(apiErrorFromStatus(unavailable("x")).retry_after_s, 1);
  EXPECT_EQ(apiErrorFromStatus(internalError("x")).http_status, 500);
  EXPECT_EQ(errorBody(badRequest("bad", "n")),
            R"({"error":{"message":"bad","type":"invalid_request_error","param":"n","code":null}})");
}

}  // namespace
}  // namespace turbine::frontend
