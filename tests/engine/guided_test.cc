// Guided decoding in the engine: with FakeRunner's pseudo-random logits (which follow no
// grammar), every constrained sample must still spell what its constraint allows.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/fake_runner.h"

namespace turbine::engine {
namespace {

using testing::FakeRunner;

constexpr int32_t kVocab = 97;
constexpr int32_t kEos = 95;

// Token k < 95 spells the byte 32 + k (' ' .. '~'); 95 is EOS (special); 96 spells `{"a`.
std::shared_ptr<const structured::TokenTrie> fakeTrie() {
  std::vector<std::string> bytes;
  std::vector<uint8_t> excluded(kVocab, 0);
  for (int32_t k = 0; k < 95; ++k) bytes.push_back(std::string(1, static_cast<char>(32 + k)));
  bytes.push_back("</s>");
  excluded[kEos] = 1;
  bytes.push_back("{\"a");
  return std::make_shared<const structured::TokenTrie>(bytes, excluded);
}

std::string spell(const std::vector<int32_t>& ids) {
  auto trie = fakeTrie();
  std::string s;
  for (int32_t id : ids) {
    if (id != kEos) s += trie->bytes(id);
  }
  return s;
}

struct Sample {
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::kNone;
  Status status;
};

std::unique_ptr<Engine> guidedEngine(bool with_trie = true) {
  EngineOptions o;
  o.model_id = "fake";
  o.eos_token_ids = {kEos};
  if (with_trie) o.token_trie = fakeTrie();
  auto e = Engine::create(std::make_unique<FakeRunner>(kVocab, 8, 256, 1024), o);
  EXPECT_TRUE(e.isOk());
  return std::move(e).value();
}

std::vector<Sample> run(Engine& e, Request r) {
  std::vector<Sample> samples(static_cast<size_t>(r.n));
  auto stream = e.addStream(std::move(r));
  EXPECT_TRUE(stream.isOk()) << stream.status().toString();
  if (!stream.isOk()) return samples;
  while (auto o = (*stream)->next()) {
    if (o->index < 0) {
      ADD_FAILURE() << o->status.toString();
      break;
    }
    Sample& s = samples[static_cast<size_t>(o->index)];
    s.tokens.insert(s.tokens.end(), o->token_ids.begin(), o->token_ids.end());
    if (o->finished()) s.reason = o->finish_reason, s.status = o->status;
  }
  return samples;
}

Request guidedRequest(const std::string& id, structured::OutputConstraint c, uint64_t seed) {
  Request r;
  r.request_id = id;
  r.token_ids = {1, 2, 3, static_cast<int32_t>(seed % 90)};
  r.sampling.temperature = 1.0f;
  r.sampling.seed = seed;
  r.stop.max_tokens = 400;
  r.constraint = std::move(c);
  return r;
}

TEST(Guided, SampledOutputsFollowAJsonSchemaAndEndWithEos) {
  auto e = guidedEngine();
  const structured::OutputConstraint c{structured::OutputConstraint::Kind::kJsonSchema,
                                       R"({"type": "object", "properties": {
                                          "a": {"type": "integer"},
                                          "b": {"enum": ["x", "yz"]}},
                                          "required": ["a", "b"]})"};
  int complete = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    Request r = guidedRequest("g" + std::to_string(seed), c, seed);
    r.n = 2;
    for (const Sample& s : run(*e, std::move(r))) {
      ASSERT_TRUE(s.status.isOk()) << s.status.toString();
      const std::string text = spell(s.tokens);
      if (s.reason == FinishReason::kStop) {
        ++complete;
        ASSERT_EQ(s.tokens.back(), kEos);
        const auto j = nlohmann::json::parse(text, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << text;
        EXPECT_TRUE(j["a"].is_number()) << text;  // an integer, but maybe past 64 bits
        EXPECT_TRUE(std::regex_search(text, std::regex(R"("a"\s*:\s*-?[0-9]+\s*[,}])"))) << text;
        EXPECT_TRUE(j["b"] == "x" || j["b"] == "yz") << text;
      } else {
        ASSERT_EQ(s.reason, FinishReason::kLength);
        structured::Matcher m(*structured::compileConstraint(c));
        EXPECT_TRUE(m.advance(text)) << text;  // a prefix of a valid answer
      }
    }
  }
  EXPECT_GE(complete, 20);  // nearly all of the 24 samples finish well within 400 tokens
}

TEST(Guided, GreedyChoiceAndRegex) {
  auto e = guidedEngine();
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Request r = guidedRequest("c" + std::to_string(seed),
                              {structured::OutputConstraint::Kind::kChoice, R"(["yes", "no", "{\"a"])"},
                              seed);
    r.sampling.temperature = 0.0f;
    const Sample s = run(*e, std::move(r))[0];
    EXPECT_EQ(s.reason, FinishReason::kStop);
    const std::string text = spell(s.tokens);
    EXPECT_TRUE(text == "yes" || text == "no" || text == "{\"a") << text;

    Request x = guidedRequest("r" + std::to_string(seed),
                              {structured::OutputConstraint::Kind::kRegex, "[A-F]{3}-\\d\\d"}, seed);
    const Sample t = run(*e, std::move(x))[0];
    EXPECT_EQ(t.reason, FinishReason::kStop);
    EXPECT_TRUE(std::regex_match(spell(t.tokens), std::regex("[A-F]{3}-[0-9]{2}"))) << spell(t.tokens);
  }
}

// A context-free grammar (Lark syntax): brackets nested n deep around x and one or two digits.
TEST(Guided, SampledOutputsFollowAGrammar) {
  auto e = guidedEngine();
  const structured::OutputConstraint c{structured::OutputConstraint::Kind::kGrammar,
                                       "start: pair\npair: \"(\" pair \")\" | \"x\" NUM\nNUM: /[0-9]{1,2}/\n"};
  int complete = 0, nested = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Request r = guidedRequest("cfg" + std::to_string(seed), c, seed);
    r.n = 2;
    for (const Sample& s : run(*e, std::move(r))) {
      ASSERT_TRUE(s.status.isOk()) << s.status.toString();
      ASSERT_EQ(s.reason, FinishReason::kStop) << spell(s.tokens);
      ++complete;
      const std::string text = spell(s.tokens);
      const size_t open = text.find_first_not_of('(');
      ASSERT_NE(open, std::string::npos) << text;
      const size_t close = text.find(')');
      const size_t inner_end = close == std::string::npos ? text.size() : close;
      EXPECT_TRUE(std::regex_match(text.substr(open, inner_end - open), std::regex("x[0-9]{1,2}"))) << text;
      EXPECT_EQ(text.substr(inner_end), std::string(open, ')')) << text;  // exactly as many closed as opened
      nested += open > 0;
    }
  }
  EXPECT_EQ(complete, 16);
  EXPECT_GT(nested, 0);  // the samples do use the recursion
}

TEST(Guided, RefusedWithABadConstraintOrWithoutAVocabulary) {
  auto e = guidedEngine();
  Status st = e->add(guidedRequest("bad", {structured::OutputConstraint::Kind::kJsonSchema,
                                           R"({"type": "number", "minimum": 3})"},
                                   1),
                     [](Output&&) {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("minimum"), std::string::npos) << st.message();

  auto bare = guidedEngine(/*with_trie=*/false);
  st = bare->add(guidedRequest("x", {structured::OutputConstraint::Kind::kChoice, R"(["a"])"}, 1),
                 [](Output&&) {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

// A request that migrated mid-output: its output so far is at the end of the prompt, and what
// the new engine writes must continue it, not start a new answer.
TEST(Guided, AResumedOutputIsContinued) {
  auto e = guidedEngine();
  const structured::OutputConstraint c{structured::OutputConstraint::Kind::kJsonSchema,
                                       R"({"type": "object", "properties": {"a": {"type": "integer"}},
                                          "required": ["a"]})"};
  auto trie = fakeTrie();
  auto idOf = [&](char ch) { return static_cast<int32_t>(ch) - 32; };
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Request r = guidedRequest("resume" + std::to_string(seed), c, seed);
    const std::string so_far = "{\"a\": 1";
    for (char ch : so_far) r.token_ids.push_back(idOf(ch));
    r.constraint->resume_tokens = static_cast<int32_t>(so_far.size());
    const Sample s = run(*e, std::move(r))[0];
    ASSERT_EQ(s.reason, FinishReason::kStop) << s.status.toString();
    const std::string whole = so_far + spell(s.tokens);
    const auto j = nlohmann::json::parse(whole, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << whole;
    EXPECT_TRUE(std::regex_search(whole, std::regex(R"("a"\s*:\s*1[0-9]*\s*\})"))) << whole;
  }
  Request bad = guidedRequest("bad-resume", c, 1);
  bad.token_ids.push_back(idOf('x'));
  bad.constraint->resume_tokens = 1;
  auto stream = e->addStream(std::move(bad));
  ASSERT_TRUE(stream.isOk());
  auto out = (*stream)->next();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->index, -1);  // refused as a whole
  EXPECT_NE(out->status.message().find("does not fit"), std::string::npos) << out->status.toString();
}

TEST(Guided, ACompleteOutputEndsWithoutEosWhenEosIsIgnored) {
  auto e = guidedEngine();
  Request r = guidedRequest("ign", {structured::OutputConstraint::Kind::kChoice, R"(["done"])"}, 1);
  r.stop.ignore_eos = true;
  const Sample s = run(*e, std::move(r))[0];
  EXPECT_EQ(s.reason, FinishReason::kStop);
  EXPECT_TRUE(s.status.isOk());
  EXPECT_EQ(spell(s.tokens), "done");
  EXPECT_EQ(s.tokens.size(), 4u);  // no EOS
}

TEST(Guided, AConstraintNoTokenCanSpellEndsTheRequestWithAnError) {
  auto e = guidedEngine();
  // Only the byte 0x01 would do, and no token spells it.
  const Sample s = run(*e, guidedRequest("dead", {structured::OutputConstraint::Kind::kRegex, "\\x01"}, 1))[0];
  EXPECT_EQ(s.reason, FinishReason::kAbort);
  EXPECT_NE(s.status.message().find("no token"), std::string::npos) << s.status.toString();
}

}  // namespace
}  // namespace turbine::engine
