// Structured output: grammars, the matcher, JSON schemas, regexes and token masks, checked
// against independent judges (nlohmann's JSON parser, std::regex, byte-by-byte token checks).
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "structured/constraint.h"
#include "structured/constraint_cache.h"
#include "structured/json_schema.h"
#include "structured/matcher.h"
#include "structured/regex.h"
#include "structured/token_trie.h"

namespace turbine::structured {
namespace {

using Json = nlohmann::ordered_json;

std::shared_ptr<const Grammar> schemaGrammar(const std::string& schema) {
  auto g = compileConstraint({OutputConstraint::Kind::kJsonSchema, schema});
  EXPECT_TRUE(g.isOk()) << g.status().message();
  return g.isOk() ? *g : nullptr;
}

// Whether `text` is a complete sentence of `g`.
bool matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher m(g);
  return m.advance(text) && m.accepting();
}

// Whether `text` can start a sentence of `g`.
bool isPrefix(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher m(g);
  return m.advance(text);
}

Json randomJson(std::mt19937& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 3 ? 5 : 7));
  switch (kind) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng() % 20001) - 10000;
    case 3: return std::ldexp(static_cast<double>(rng() % 100000) - 50000, -static_cast<int>(rng() % 12));
    case 4: {
      static const std::vector<std::string> kStrings = {"", "a", "hé", "q\"uote", "back\\slash",
                                                        "tab\tnew\nline", "日本", "emoji 😀", "\x01"};
      return kStrings[rng() % kStrings.size()];
    }
    case 5: {
      Json a = Json::array();
      for (int n = static_cast<int>(rng() % 4); n > 0; --n) a.push_back(randomJson(rng, depth + 1));
      return a;
    }
    default: {
      Json o = Json::object();
      for (int n = static_cast<int>(rng() % 4); n > 0; --n)
        o["k" + std::to_string(rng() % 10)] = randomJson(rng, depth + 1);
      return o;
    }
  }
}

TEST(Grammar, RewritesDirectLeftRecursionRefusesIndirectAndEmptyLanguages) {
  GrammarBuilder b;  // a -> a x | a | y   ==   y x*
  const int32_t a = b.addRule("a");
  b.addAlternative(a, {GrammarBuilder::rule(a), b.byte('x')});
  b.addAlternative(a, {GrammarBuilder::rule(a)});
  b.addAlternative(a, {b.byte('y')});
  auto direct = std::move(b).build(a);
  ASSERT_TRUE(direct.isOk()) << direct.status().message();
  auto g = std::make_shared<const Grammar>(std::move(direct).value());
  for (const char* yes : {"y", "yx", "yxxx"}) EXPECT_TRUE(matches(g, yes)) << yes;
  for (const char* no : {"", "x", "xy", "yy", "yxy"}) EXPECT_FALSE(matches(g, no)) << no;

  GrammarBuilder i;  // p -> q x | y ; q -> p z : p reaches itself through q
  const int32_t p = i.addRule("p"), q = i.addRule("q");
  i.addAlternative(p, {GrammarBuilder::rule(q), i.byte('x')});
  i.addAlternative(p, {i.byte('y')});
  i.addAlternative(q, {GrammarBuilder::rule(p), i.byte('z')});
  auto indirect = std::move(i).build(p);
  ASSERT_FALSE(indirect.isOk());
  EXPECT_NE(indirect.status().message().find("left recursion"), std::string::npos) << indirect.status().message();

  GrammarBuilder e;
  const int32_t loop = e.addRule("loop");
  e.addAlternative(loop, {e.byte('x'), GrammarBuilder::rule(loop)});  // never ends
  EXPECT_FALSE(std::move(e).build(loop).isOk());
}

TEST(Matcher, RightRecursionKeepsAFlatStackAndRejectsWithoutChangingState) {
  auto g = schemaGrammar(R"({"type": "string"})");
  Matcher m(g);
  ASSERT_TRUE(m.advance("\""));
  for (int i = 0; i < 200000; ++i) ASSERT_TRUE(m.advance("ab"));  // compaction keeps it bounded
  EXPECT_FALSE(m.accepting());
  EXPECT_FALSE(m.advance("\x01"));  // a control byte is not a JSON string character
  EXPECT_TRUE(m.advance("\""));
  EXPECT_TRUE(m.accepting());
  EXPECT_TRUE(m.advance("  "));  // trailing whitespace, bounded
  EXPECT_FALSE(m.advance(std::string(kMaxWhitespace, ' ')));
  EXPECT_FALSE(m.advance("x"));
}

TEST(JsonSchema, AnyValueAgreesWithAJsonParserOnValidAndMutatedDocuments) {
  auto g = schemaGrammar("{}");
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\",:0123456789-+.eEtrufalsn \\x\x01\xc3\xa9\xff";
  int valid = 0, invalid = 0;
  for (int i = 0; i < 3000; ++i) {
    const Json v = randomJson(rng, 0);
    std::string doc = (i % 3 == 0) ? v.dump(2) : v.dump();
    if (i % 2 == 1) {  // mutate one byte: insert, delete or replace
      const size_t at = rng() % (doc.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: doc.insert(doc.begin() + static_cast<long>(at), c); break;
        case 1: if (at < doc.size()) doc.erase(at, 1); break;
        default: if (at < doc.size()) doc[at] = c; break;
      }
    }
    // nlohmann refuses numbers out of double's range, which are valid JSON: skip those.
    static const std::regex kHugeExponent("[eE][+-]?[0-9]{3,}");
    if (std::regex_search(doc, kHugeExponent)) continue;
    const bool judge = nlohmann::json::accept(doc);
    (judge ? valid : invalid)++;
    ASSERT_EQ(matches(g, doc), judge) << "document: " << doc;
    if (judge && doc.size() > 1) {
      EXPECT_TRUE(isPrefix(g, doc.substr(0, doc.size() / 2))) << doc;
    }
  }
  EXPECT_GT(valid, 1500);
  EXPECT_GT(invalid, 300);
}

TEST(JsonSchema, ObjectsFollowPropertiesRequiredAndAdditionalProperties) {
  auto g = schemaGrammar(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 3},
      "age": {"type": "integer"},
      "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
      "ok": {"type": ["boolean", "null"]}
    },
    "required": ["name", "ok"]
  })");
  EXPECT_TRUE(matches(g, R"({"name": "Bo", "ok": true})"));
  EXPECT_TRUE(matches(g, R"({"name":"Bob","age":-3,"tags":["a","b"],"ok":null})"));
  EXPECT_TRUE(matches(g, "{\n  \"name\": \"é\",\n  \"tags\": [\"b\"],\n  \"ok\": false\n}"));
  EXPECT_FALSE(matches(g, R"({"ok": true})"));                       // name required
  EXPECT_FALSE(matches(g, R"({"name": "", "ok": true})"));           // minLength
  EXPECT_FALSE(matches(g, R"({"name": "Bobby", "ok": true})"));      // maxLength
  EXPECT_FALSE(matches(g, R"({"name": "Bo", "age": 1.5, "ok": 1})"));
  EXPECT_FALSE(matches(g, R"({"name": "Bo", "tags": [], "ok": true})"));
  EXPECT_FALSE(matches(g, R"({"name": "Bo", "tags": ["a","a","a"], "ok": true})"));
  EXPECT_FALSE(matches(g, R"({"name": "Bo", "tags": ["c"], "ok": true})"));
  EXPECT_FALSE(matches(g, R"({"name": "Bo", "ok": true, "x": 1})"));  // no additional
  EXPECT_FALSE(matches(g, R"({"ok": true, "name": "Bo"})"));          // schema order

  auto open = schemaGrammar(R"({"type": "object", "properties": {"a": {"type": "number"}},
                                "additionalProperties": {"type": "string"}})");
  EXPECT_TRUE(matches(open, R"({"a": 1e5, "x": "y", "z": ""})"));
  EXPECT_FALSE(matches(open, R"({"a": 1, "x": 2})"));
  EXPECT_TRUE(matches(schemaGrammar(R"({"type": "object"})"), R"({"any": [1, {"b": null}]})"));
}

TEST(JsonSchema, RefsDefsConstEnumAnyOfAndFormats) {
  auto tree = schemaGrammar(R"({
    "$defs": {"node": {"type": "object", "properties": {
      "v": {"const": 7}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["v"]}},
    "$ref": "#/$defs/node"})");
  EXPECT_TRUE(matches(tree, R"({"v": 7, "kids": [{"v": 7}, {"v": 7, "kids": []}]})"));
  EXPECT_FALSE(matches(tree, R"({"v": 7, "kids": [{"v": 8}]})"));

  auto any_of = schemaGrammar(R"({"anyOf": [{"type": "integer"}, {"enum": ["x", null]}]})");
  EXPECT_TRUE(matches(any_of, "12"));
  EXPECT_TRUE(matches(any_of, "\"x\""));
  EXPECT_TRUE(matches(any_of, "null"));
  EXPECT_FALSE(matches(any_of, "\"y\""));

  auto date = schemaGrammar(R"({"type": "string", "format": "date"})");
  EXPECT_TRUE(matches(date, "\"2026-12-07\""));
  EXPECT_FALSE(matches(date, "\"2026-13-07\""));
  auto pattern = schemaGrammar(R"({"type": "string", "pattern": "^[A-Z]{2}\\d+$"})");
  EXPECT_TRUE(matches(pattern, "\"AB12\""));
  EXPECT_FALSE(matches(pattern, "\"AB\""));
  auto search = schemaGrammar(R"({"type": "string", "pattern": "a\"b"})");  // unanchored
  EXPECT_TRUE(matches(search, R"("xxa\"bYY")"));
  EXPECT_FALSE(matches(search, R"("ab")"));
}

// Integer bounds: every integer in [-1300, 1300] (and a few far ones) is accepted exactly when it
// is within the bounds; non-canonical spellings never are.
TEST(JsonSchema, IntegerBoundsAcceptExactlyTheIntegersInRange) {
  struct Case {
    std::string bounds;
    std::optional<int64_t> lo, hi;
  };
  const std::vector<Case> cases = {
      {R"("minimum": 0)", 0, std::nullopt},
      {R"("minimum": 1, "maximum": 100)", 1, 100},
      {R"("minimum": -5, "maximum": 5)", -5, 5},
      {R"("minimum": -1000, "maximum": -7)", -1000, -7},
      {R"("exclusiveMinimum": 9, "exclusiveMaximum": 1000)", 10, 999},
      {R"("minimum": 0.5, "maximum": 99.5)", 1, 99},
      {R"("exclusiveMinimum": -0.5)", 0, std::nullopt},
      {R"("maximum": -3)", std::nullopt, -3},
      {R"("maximum": 0)", std::nullopt, 0},
      {R"("minimum": 37, "maximum": 37)", 37, 37},
      {R"("minimum": 95, "maximum": 1205)", 95, 1205},
      {R"("minimum": -1205, "maximum": 12)", -1205, 12},
      {R"("minimum": 123)", 123, std::nullopt},
  };
  for (const Case& c : cases) {
    const auto g = schemaGrammar(R"({"type": "integer", )" + c.bounds + "}");
    ASSERT_TRUE(g) << c.bounds;
    std::vector<int64_t> values;
    for (int64_t v = -1300; v <= 1300; ++v) values.push_back(v);
    for (int64_t v : {int64_t{99999}, int64_t{123456789}, int64_t{-99999}, int64_t{-123456789}}) values.push_back(v);
    for (int64_t v : values) {
      const bool in = (!c.lo || v >= *c.lo) && (!c.hi || v <= *c.hi);
      ASSERT_EQ(matches(g, std::to_string(v)), in) << c.bounds << ": " << v;
    }
    for (const char* odd : {"-0", "007", "1.0", "1e2", "+3", "--1", ""}) {
      EXPECT_FALSE(matches(g, odd)) << c.bounds << ": '" << odd << "'";
    }
  }
  // In an object, as tool parameters carry them.
  const auto g = schemaGrammar(
      R"({"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 50}},
          "required": ["limit"]})");
  EXPECT_TRUE(matches(g, R"({"limit": 50})"));
  EXPECT_FALSE(matches(g, R"({"limit": 51})"));
  EXPECT_FALSE(matches(g, R"({"limit": 0})"));
  // Bounds do not apply to the other types of a type list.
  const auto g2 = schemaGrammar(R"({"type": ["integer", "null"], "minimum": 2})");
  EXPECT_TRUE(matches(g2, "null"));
  EXPECT_TRUE(matches(g2, "2"));
  EXPECT_FALSE(matches(g2, "1"));
}

TEST(JsonSchema, RefusesWhatItDoesNotEnforceNamingThePlace) {
  for (const auto& [schema, needle] : std::vector<std::pair<std::string, std::string>>{
           {R"({"type": "object", "properties": {"n": {"type": "number", "minimum": 1}}})",
            "#/properties/n: keyword 'minimum' is supported for type integer only"},
           {R"({"maximum": 3})", "keyword 'maximum' is supported for type integer only"},
           {R"({"type": "integer", "enum": [1, 9], "maximum": 3})", "type integer only"},
           {R"({"type": ["integer", "number"], "minimum": 0})", "type integer only"},
           {R"({"type": "integer", "minimum": 5, "maximum": 4})", "no integer satisfies"},
           {R"({"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 4})", "no integer satisfies"},
           {R"({"type": "integer", "minimum": 1e30})", "within +-1e18"},
           {R"({"type": "integer", "multipleOf": 2})", "keyword 'multipleOf'"},
           {R"({"type": "strin"})", "unknown type 'strin'"},
           {R"({"$ref": "#/$defs/missing"})", "points nowhere"},
           {R"({"allOf": [{}, {}]})", "allOf"},
           {R"({"anyOf": [{"$ref": "#"}]})", "matches no string"},
           {R"({"anyOf": [{"type": "integer"}, {"$ref": "#"}]})", "left recursion"},
           {R"([1, 2])", "must be an object"},
           {R"j({"type": "string", "pattern": "(?=x)"})j", "lookaround"},
           {"not json", "not valid JSON"}}) {
    auto g = compileConstraint({OutputConstraint::Kind::kJsonSchema, schema});
    ASSERT_FALSE(g.isOk()) << schema;
    EXPECT_NE(g.status().message().find(needle), std::string::npos)
        << schema << " -> " << g.status().message();
  }
}

TEST(Regex, AgreesWithStdRegexOnRandomStrings) {
  const std::vector<std::string> patterns = {
      "a|b|c", "(ab)*c?", "[a-c]+\\d{2,3}", "x.y", "[^ab]*", "(a|bc){2}", "\\w+@\\w+\\.com",
      "a{0,2}b{1,}", "(?:a|b)*abb", "-?(0|[1-9]\\d*)(\\.\\d+)?", "[\\-a]+", "\\s?\\S+"};
  const std::string alphabet = "abcxy01239@.-_ \t";
  std::mt19937 rng(11);
  for (const std::string& p : patterns) {
    auto g = compileRegex(p);
    ASSERT_TRUE(g.isOk()) << p << ": " << g.status().message();
    const std::regex judge(p, std::regex::ECMAScript);
    int hits = 0;
    for (int i = 0; i < 3000; ++i) {
      std::string s;
      for (int n = static_cast<int>(rng() % 8); n > 0; --n) s += alphabet[rng() % alphabet.size()];
      const bool want = std::regex_match(s, judge);
      hits += want;
      ASSERT_EQ(matches(*g, s), want) << "pattern " << p << " on '" << s << "'";
    }
    (void)hits;
  }
  auto uni = compileRegex("[α-ω]+é?");
  ASSERT_TRUE(uni.isOk());
  EXPECT_TRUE(matches(*uni, "αβω"));
  EXPECT_TRUE(matches(*uni, "λé"));
  EXPECT_FALSE(matches(*uni, "a"));
  EXPECT_FALSE(matches(*uni, "\xce"));  // half a character
  EXPECT_FALSE(compileRegex("(a").isOk());
  EXPECT_FALSE(compileRegex("a\\1").isOk());
}

TEST(ConstraintCache, CompilesEachRuleOnceKeepsTheRecentAndNeverCachesFailures) {
  using Kind = OutputConstraint::Kind;
  ConstraintCache cache(2);
  auto a = cache.compile({Kind::kRegex, "a+"});
  ASSERT_TRUE(a.isOk());
  auto again = cache.compile({Kind::kRegex, "a+", /*resume_tokens=*/3});  // same rule
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(a->get(), again->get());
  EXPECT_NE(cache.compile({Kind::kChoice, R"(["a+"])"})->get(), a->get());  // same text, other kind
  ASSERT_TRUE(cache.compile({Kind::kRegex, "b+"}).isOk());                   // evicts a+
  EXPECT_NE(cache.compile({Kind::kRegex, "a+"})->get(), a->get());
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(cache.compile({Kind::kRegex, "(a"}).isOk());
}

TEST(Choice, OnlyTheListedStrings) {
  auto g = compileConstraint({OutputConstraint::Kind::kChoice, R"(["yes", "no", "not sure"])"});
  ASSERT_TRUE(g.isOk());
  EXPECT_TRUE(matches(*g, "yes"));
  EXPECT_TRUE(matches(*g, "not sure"));
  EXPECT_FALSE(matches(*g, "ye"));
  EXPECT_TRUE(isPrefix(*g, "no"));
  EXPECT_FALSE(isPrefix(*g, "maybe"));
  EXPECT_FALSE(compileConstraint({OutputConstraint::Kind::kChoice, "[]"}).isOk());
  EXPECT_FALSE(compileConstraint({OutputConstraint::Kind::kChoice, "[1]"}).isOk());
}

TEST(TokenMask, TrieWalkEqualsTokenByTokenChecksAlongADocument) {
  // A vocabulary of random byte strings over JSON's alphabet plus every single byte.
  std::mt19937 rng(3);
  const std::string alphabet = "{}[]\",: \n0123456789-.eaklnrstu\\";
  std::vector<std::string> vocab;
  std::vector<uint8_t> excluded;
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string(1, static_cast<char>(b)));
  for (int i = 0; i < 3000; ++i) {
    std::string t;
    for (int n = 1 + static_cast<int>(rng() % 6); n > 0; --n) t += alphabet[rng() % alphabet.size()];
    vocab.push_back(t);
  }
  vocab.push_back("");         // no bytes: never allowed
  vocab.push_back("{\"");      // duplicate spellings are both allowed
  vocab.push_back("{\"");
  excluded.assign(vocab.size(), 0);
  excluded[5] = 1;  // a "special" token
  vocab[5] = "{";
  const TokenTrie trie(vocab, excluded);
  auto g = schemaGrammar(R"({"type": "object", "properties": {"name": {"type": "string"},
                             "n": {"type": "array", "items": {"type": "number"}}},
                             "required": ["name", "n"]})");
  const std::string doc = R"({"name": "a\"b", "n": [1.5, -2e3, 0]})";
  Matcher m(g);
  const size_t words = (vocab.size() + 63) / 64;
  MaskCache cache;
  for (size_t at = 0; at <= doc.size(); ++at) {
    std::vector<uint64_t> mask(words, 0), cached(words, 0);
    m.fillMask(trie, mask);
    m.fillMask(trie, cached, &cache);  // local states repeat along the document: cache hits
    int allowed = 0;
    for (size_t id = 0; id < vocab.size(); ++id) {
      const bool bit = (mask[id >> 6] >> (id & 63)) & 1;
      const bool cached_bit = (cached[id >> 6] >> (id & 63)) & 1;
      const bool want = trie.inTrie(static_cast<int32_t>(id)) && m.allows(vocab[id]);
      allowed += want;
      ASSERT_EQ(bit, want) << "token '" << vocab[id] << "' after '" << doc.substr(0, at) << "'";
      ASSERT_EQ(cached_bit, want) << "cached, token '" << vocab[id] << "' after '"
                                  << doc.substr(0, at) << "'";
    }
    if (at < doc.size()) {
      EXPECT_GT(allowed, 0);
      ASSERT_TRUE(m.advance(doc.substr(at, 1)));
    }
  }
  EXPECT_TRUE(m.accepting());
  EXPECT_GT(cache.size(), 3u);
  EXPECT_LT(cache.size(), doc.size());  // the string's and numbers' states repeat
}

// On real vocabularies (byte-level BPE with CJK tokens, SentencePiece with byte fallback), the
// trie walk's shortcuts (pruning, loop subtrees, the cache) must give exactly the token-by-token
// answer, at states inside and outside strings.
TEST(TokenMask, RealVocabulariesAgreeWithTokenByTokenChecks) {
  const std::string dir = TURBINE_SOURCE_DIR "/../shared/data/tokenizers";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no shared data folder " << dir;
  auto g = schemaGrammar(R"({"type": "object", "properties": {"name": {"type": "string"},
                             "n": {"type": "array", "items": {"type": "number"}}},
                             "required": ["name", "n"]})");
  for (const char* name : {"gpt-2", "deepseek-llm", "llama-spm"}) {
    auto gguf = model::GgufFile::open(dir + "/ggml-vocab-" + name + ".gguf");
    ASSERT_TRUE(gguf.isOk()) << name;
    auto tok = model::Tokenizer::fromGguf(*gguf);
    ASSERT_TRUE(tok.isOk()) << name;
    std::vector<std::string> bytes;
    std::vector<uint8_t> excluded;
    for (int32_t id = 0; id < (*tok)->vocabSize(); ++id) {
      bytes.emplace_back((*tok)->tokenBytes(id));
      excluded.push_back((*tok)->isSpecial(id) ? 1 : 0);
    }
    const TokenTrie trie(bytes, excluded);
    MaskCache cache;
    for (const std::string prefix : {"", "{\"name\": \"日本", "{\"name\": \"a\\", "{\"name\": \"x\", \"n\": [1."}) {
      Matcher m(g);
      ASSERT_TRUE(m.advance(prefix)) << prefix;
      const size_t words = (bytes.size() + 63) / 64;
      std::vector<uint64_t> walked(words, 0), cached(words, 0);
      m.fillMask(trie, walked);
      m.fillMask(trie, cached, &cache);
      int allowed = 0;
      for (size_t id = 0; id < bytes.size(); ++id) {
        const bool want = trie.inTrie(static_cast<int32_t>(id)) && m.allows(bytes[id]);
        allowed += want;
        ASSERT_EQ(((walked[id >> 6] >> (id & 63)) & 1) != 0, want) << name << " '" << bytes[id] << "' after " << prefix;
        ASSERT_EQ(((cached[id >> 6] >> (id & 63)) & 1) != 0, want) << name << " '" << bytes[id] << "' after " << prefix;
      }
      EXPECT_GT(allowed, 0) << name << " after " << prefix;
    }
  }
}

}  // namespace
}  // namespace turbine::structured
