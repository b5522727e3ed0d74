// Grammar texts (GBNF and Lark) -> Grammar: checked against independent judges (std::regex for
// the regular ones, hand-written recursive-descent recognisers for the context-free ones,
// nlohmann's parser for JSON), plus the errors a user gets and garbage that must not crash.
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "structured/constraint.h"
#include "structured/grammar_text.h"
#include "structured/matcher.h"
#include "structured/token_trie.h"

namespace turbine::structured {
namespace {

std::shared_ptr<const Grammar> compile(std::string_view text, GrammarSyntax syntax = GrammarSyntax::kAuto) {
  auto g = compileGrammarText(text, syntax);
  EXPECT_TRUE(g.isOk()) << g.status().message() << "\n" << text;
  return g.isOk() ? *g : nullptr;
}

bool matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  if (!g) return false;
  Matcher m(g);
  return m.advance(text) && m.accepting();
}

std::string error(std::string_view text) {
  auto g = compileGrammarText(text);
  return g.isOk() ? "(compiled)" : g.status().message();
}

std::string randomString(std::mt19937& rng, const std::string& alphabet, int max_len) {
  std::string s;
  for (int n = static_cast<int>(rng() % static_cast<unsigned>(max_len + 1)); n > 0; --n) s += alphabet[rng() % alphabet.size()];
  return s;
}

TEST(GrammarText, DetectsTheSyntaxFromHowRulesAreDefined) {
  EXPECT_EQ(detectGrammarSyntax("root ::= \"a\""), GrammarSyntax::kGbnf);
  EXPECT_EQ(detectGrammarSyntax("# comment: with a colon\n\nroot ::= x\nx ::= \"a\""), GrammarSyntax::kGbnf);
  EXPECT_EQ(detectGrammarSyntax("start: \"a\""), GrammarSyntax::kLark);
  EXPECT_EQ(detectGrammarSyntax("?start: sum\n"), GrammarSyntax::kLark);
  EXPECT_EQ(detectGrammarSyntax("// c\n%import common.WS\nstart: WS"), GrammarSyntax::kLark);
  EXPECT_EQ(detectGrammarSyntax("NAME.2: /a/"), GrammarSyntax::kLark);
  EXPECT_EQ(detectGrammarSyntax("start: \"::=\""), GrammarSyntax::kLark);  // inside a string
}

// Regular GBNF grammars against std::regex over random strings (both directions).
TEST(GrammarText, GbnfAgreesWithStdRegexOnRandomStrings) {
  struct Case { const char* gbnf; const char* regex; const char* alphabet; const char* member; };
  const Case cases[] = {
      {R"(root ::= ("ab" | [c-d])* "x"?)", "(ab|[c-d])*x?", "abcdx", "abdcx"},
      {R"(root ::= [^a-c]{2,3} "-" .)", "[^a-c]{2,3}-[\\s\\S]", "abcdz-\n", "z\n-\n"},
      {R"(root ::= item ("," item){0,2}
item ::= [0-9]+ | "n"  # a comment
)", "([0-9]+|n)(,([0-9]+|n)){0,2}", "019n,", "10,n,9"},
      {"root ::= my-word \" \" my-word\nmy-word ::= [a-b]{1,}", "[a-b]+ [a-b]+", "ab c", "ab b"},
      {"root ::=\n  \"a\"\n  | \"b\" \"c\"+\n  | ( )", "a|bc+|", "abc", "bcc"},
      {R"(root ::= "\x41\t" [\x30-\x32\]] "\"")", "A\t[0-2\\]]\"", "A\t012]\"x", "A\t]\""},
      {R"(root ::= "q"{3} "r"{2,} "s"{0,1})", "qqqrr+s?", "qrs", "qqqrrrs"},
  };
  std::mt19937 rng(5);
  for (const Case& c : cases) {
    auto g = compile(c.gbnf);
    ASSERT_NE(g, nullptr) << c.gbnf;
    const std::regex judge(c.regex, std::regex::ECMAScript);
    int hits = 0;
    for (int i = 0; i < 4000; ++i) {
      const std::string s = randomString(rng, c.alphabet, 9);
      const bool want = std::regex_match(s, judge);
      hits += want;
      ASSERT_EQ(matches(g, s), want) << c.gbnf << " on '" << s << "'";
    }
    (void)hits;
    EXPECT_TRUE(std::regex_match(c.member, judge)) << c.member;
    EXPECT_TRUE(matches(g, c.member)) << c.gbnf << " on '" << c.member << "'";
  }
  auto uni = compile(R"(root ::= [α-ω]+ "é" "\u00e9" "\U0001F600")");
  EXPECT_TRUE(matches(uni, "αβωéé😀"));
  EXPECT_FALSE(matches(uni, "αβωé"));
  EXPECT_FALSE(matches(uni, "aéé😀"));
}

// Balanced brackets: context-free, beyond any regex.
bool balanced(std::string_view s) {
  std::string stack;
  for (char c : s) {
    if (c == '(' || c == '[') {
      stack += c;
    } else if (c == ')' || c == ']') {
      if (stack.empty() || stack.back() != (c == ')' ? '(' : '[')) return false;
      stack.pop_back();
    } else {
      return false;
    }
  }
  return stack.empty();
}

TEST(GrammarText, GbnfRecursionAgreesWithABracketChecker) {
  auto g = compile(R"g(root ::= group*
group ::= "(" root ")" | "[" root "]")g");
  std::mt19937 rng(7);
  int hits = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string s = randomString(rng, "()[]", 10);
    hits += balanced(s);
    ASSERT_EQ(matches(g, s), balanced(s)) << s;
  }
  EXPECT_GT(hits, 100);
}

// Arithmetic with spaces, as a recursive-descent recogniser (the judge).
class Arith {
 public:
  explicit Arith(std::string_view s) : s_(s) {}
  bool ok() {
    if (!sum()) return false;
    skip();
    return i_ == s_.size();
  }

 private:
  void skip() { while (i_ < s_.size() && s_[i_] == ' ') ++i_; }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool sum() {
    if (!product()) return false;
    for (;;) {
      const size_t save = i_;
      if (!eat('+') && !eat('-')) return true;
      if (!product()) return i_ = save, false;
    }
  }
  bool product() {
    if (!atom()) return false;
    for (;;) {
      const size_t save = i_;
      if (!eat('*')) return true;
      if (!atom()) return i_ = save, false;
    }
  }
  bool atom() {
    skip();
    if (eat('-')) return atom();
    if (eat('(')) return sum() && eat(')');
    // NUMBER of common.lark: INT, or a decimal with an optional exponent-less fraction
    const size_t b = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    const bool int_part = i_ > b;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      const size_t f = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      return int_part || i_ > f;
    }
    return int_part;
  }
  std::string_view s_;
  size_t i_ = 0;
};

// The calculator every Lark tutorial starts with: left-recursive, with %import and %ignore.
constexpr const char* kCalc = R"lark(
?start: sum
?sum: product
    | sum "+" product   -> add
    | sum "-" product   -> sub
?product: atom
    | product "*" atom  -> mul
?atom: NUMBER           -> number
     | "-" atom         -> neg
     | "(" sum ")"

%import common.NUMBER
%ignore " "
)lark";

TEST(GrammarText, LarkCalculatorAgreesWithARecursiveDescentRecogniser) {
  auto g = compile(kCalc);
  ASSERT_NE(g, nullptr);
  std::mt19937 rng(9);
  int hits = 0;
  for (int i = 0; i < 30000; ++i) {
    const std::string s = randomString(rng, "12.+-*() ", 9);
    const bool want = Arith(s).ok();
    hits += want;
    ASSERT_EQ(matches(g, s), want) << "'" << s << "'";
  }
  EXPECT_GT(hits, 500);
  EXPECT_TRUE(matches(g, " 12 * (3.5 - -4) + .5 "));
}

// vLLM's documented examples, both syntaxes.
TEST(GrammarText, VllmSqlExamplesInGbnfAndLark) {
  auto gbnf = compile(R"(
root ::= select_statement
select_statement ::= "SELECT " column " from " table " where " condition
column ::= "col_1 " | "col_2 "
table ::= "table_1 " | "table_2 "
condition ::= column "= " number
number ::= "1 " | "2 "
)");
  EXPECT_TRUE(matches(gbnf, "SELECT col_1  from table_2  where col_2 = 1 "));
  EXPECT_FALSE(matches(gbnf, "SELECT col_3  from table_2  where col_2 = 1 "));
  EXPECT_FALSE(matches(gbnf, "select col_1  from table_2  where col_2 = 1 "));

  auto lark = compile(R"(
?start: select_statement
?select_statement: "SELECT "i column_list " FROM "i table_name
?column_list: column_name ("," column_name)*
?table_name: identifier
?column_name: identifier
?identifier: /[a-zA-Z_][a-zA-Z0-9_]*/
)");
  EXPECT_TRUE(matches(lark, "SELECT a,b_2 FROM t"));
  EXPECT_TRUE(matches(lark, "select a from T9"));  // "..."i: any case
  EXPECT_FALSE(matches(lark, "SELECT 2a FROM t"));
  EXPECT_FALSE(matches(lark, "SELECT a, FROM t"));
}

TEST(GrammarText, LarkJsonGrammarAcceptsWhatAJsonParserAccepts) {
  auto g = compile(R"(
?start: value
?value: dict
      | list
      | string
      | SIGNED_NUMBER      -> number
      | "true"             -> true
      | "false"            -> false
      | "null"             -> null

list : "[" [value ("," value)*] "]"
dict : "{" [pair ("," pair)*] "}"
pair : string ":" value
string : ESCAPED_STRING

%import common.ESCAPED_STRING
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
)");
  ASSERT_NE(g, nullptr);
  for (const char* doc : {R"({"a": [1, -2.5e3, true, null], "b\"c": {}})", "[]", " \"x\\n\" ", "-0.5",
                          "[[[], {}]]", "{\"k\" :\n\t[ 1 ,2 ]}"}) {
    ASSERT_FALSE(nlohmann::json::parse(doc, nullptr, false).is_discarded()) << doc;
    EXPECT_TRUE(matches(g, doc)) << doc;
  }
  for (const char* bad : {"[1,]", "{\"a\" 1}", "{a: 1}", "[1 2]", "\"open", "tru", "{\"a\":1,}", ""}) {
    ASSERT_TRUE(nlohmann::json::parse(bad, nullptr, false).is_discarded()) << bad;
    EXPECT_FALSE(matches(g, bad)) << bad;
  }
}

TEST(GrammarText, LarkTerminalsRangesRepeatsAndPriorities) {
  auto g = compile(R"(
start: greeting _SEP NAME~1..2 ["!"] CODE  // a comment
!greeting: "hi" | "hello"i
_SEP: ", "
NAME.2: UPPER ("a".."z")+ " "
UPPER: "A".."Z"
CODE: DIGIT~3
%import common.DIGIT
)");
  EXPECT_TRUE(matches(g, "hi, Ann 123"));
  EXPECT_TRUE(matches(g, "HeLLo, Ann Bob !007"));
  EXPECT_FALSE(matches(g, "hi, Ann Bob Cy 123"));  // ~1..2
  EXPECT_FALSE(matches(g, "hi, ann 123"));
  EXPECT_FALSE(matches(g, "hi, Ann 12"));
  EXPECT_FALSE(matches(g, "hi,Ann 123"));
  // %ignore puts the ignored text before tokens of rules, never inside a terminal.
  auto ws = compile("start: WORD \"=\" WORD\n%import common.WORD\n%ignore \" \"");
  EXPECT_TRUE(matches(ws, " ab  =  cd "));
  EXPECT_FALSE(matches(ws, "a b=cd"));
}

// Masks under a grammar that allows whitespace before every token: many tokens leave the cached
// local state (those starting with a space), so the cache falls back to a full walk. Walked,
// cached and token-by-token answers must agree all along a document.
TEST(GrammarText, TokenMasksUnderIgnoredWhitespaceAgreeWithTokenByTokenChecks) {
  auto g = compile(R"(
?start: value
?value: dict | list | ESCAPED_STRING | SIGNED_NUMBER | "true" | "null"
list : "[" [value ("," value)*] "]"
dict : "{" [pair ("," pair)*] "}"
pair : ESCAPED_STRING ":" value
%import common (ESCAPED_STRING, SIGNED_NUMBER, WS)
%ignore WS
)");
  ASSERT_NE(g, nullptr);
  std::mt19937 rng(17);
  const std::string alphabet = "{}[]\",: \n\t0123456789-.eanrtu\\";
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string(1, static_cast<char>(b)));
  for (int i = 0; i < 3000; ++i) vocab.push_back(randomString(rng, alphabet, 5) + alphabet[rng() % alphabet.size()]);
  const TokenTrie trie(vocab, std::vector<uint8_t>(vocab.size(), 0));
  const std::string doc = " { \"a\" : [ 1.5 , true,\n null ] , \"b\\\"\":{}} ";
  Matcher m(g);
  MaskCache cache;
  const size_t words = (vocab.size() + 63) / 64;
  for (size_t at = 0; at <= doc.size(); ++at) {
    std::vector<uint64_t> walked(words, 0), cached(words, 0);
    m.fillMask(trie, walked);
    m.fillMask(trie, cached, &cache);
    int allowed = 0;
    for (size_t id = 0; id < vocab.size(); ++id) {
      const bool want = m.allows(vocab[id]);
      allowed += want;
      ASSERT_EQ(((walked[id >> 6] >> (id & 63)) & 1) != 0, want) << "'" << vocab[id] << "' after '" << doc.substr(0, at) << "'";
      ASSERT_EQ(((cached[id >> 6] >> (id & 63)) & 1) != 0, want) << "cached '" << vocab[id] << "' after '" << doc.substr(0, at) << "'";
    }
    if (at < doc.size()) {
      EXPECT_GT(allowed, 0);
      ASSERT_TRUE(m.advance(doc.substr(at, 1))) << doc.substr(0, at + 1);
    }
  }
  EXPECT_TRUE(m.accepting());
}

TEST(GrammarText, ErrorsNameTheLineColumnOrRule) {
  struct Case { const char* text; const char* says; };
  const Case cases[] = {
      {"root ::= x", "line 1, column 10: 'x' is not defined"},
      {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: 'root' is defined twice"},
      {"root ::= \"abc", "line 1, column 10: unterminated string"},
      {"start ::= \"a\"", "no 'root' rule"},
      {"start: \"a\" | b_rule", "'b_rule' is not defined"},
      {"start: NUMBER", "'NUMBER' is not defined (add '%import common.NUMBER')"},
      {"root ::= [a-", "missing ']'"},
      {"root ::= \"\\q\"", "escape '\\q' is not supported"},
      {"root ::= \"a\"{5000}", "above 4096"},
      {"root ::= \"a\"{3,2}", "out of order"},
      {"root ::= a \"x\"\na ::= b | \"y\"\nb ::= a \"z\"", "left recursion"},
      {"root ::= (\"a\" | \"b\"", "expected ')'"},
      {"root ::= \"a\" )", "expected a rule"},
      {"start: \"a\"\n%declare X", "%declare is not supported"},
      {"%import python.NAME\nstart: NAME", "only the terminals of 'common'"},
      {"%import common.NOPE\nstart: \"a\"", "common.NOPE is not a terminal"},
      {"start: /a+/i", "flag 'i' is not supported"},
      {"start: /a(/", "/a(/: regex at offset"},
      {"start: sep{\"a\", \",\"}", "templates"},
      {"start: \"ab\"..\"z\"", "one-character strings"},
      {"root ::= \"\\U00110000\"", "above U+10FFFF"},
      {"root ::= [^\\x00-\\U0010FFFF]", "matches nothing"},
      {"root ::= \x01", "unexpected byte 0x01"},
      {"", "no 'start' rule"},
  };
  for (const Case& c : cases) {
    const std::string e = error(c.text);
    EXPECT_NE(e.find(c.says), std::string::npos) << c.text << "\n -> " << e;
  }
  EXPECT_NE(error("root ::= x").find("(read as GBNF)"), std::string::npos);
  EXPECT_NE(error("start: x").find("(read as Lark)"), std::string::npos);
}

TEST(GrammarText, GarbageNeverCrashesAndDeepNestingIsAnError) {
  std::mt19937 rng(13);
  const std::vector<std::string> pieces = {"root", "start", " ::= ", ": ", "\"a\"", "[a-z]", "/b+/", "(", ")",
                                           "[", "]", "|", "*", "+", "?", "{2,3}", "~ 2..3", "\n", "x", "X",
                                           "%ignore ", "%import common.WS", "..", "->", "\\", "#", "."};
  int compiled = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text = i % 3 == 0 ? "" : i % 3 == 1 ? "root ::= " : "start: ";  // some compile
    for (int n = static_cast<int>(rng() % 12); n > 0; --n) text += pieces[rng() % pieces.size()];
    auto g = compileGrammarText(text);
    if (g.isOk()) {
      ++compiled;
      Matcher m(*g);
      m.advance("aab");
    } else {
      EXPECT_FALSE(g.status().message().empty());
    }
  }
  EXPECT_GT(compiled, 200);
  const std::string deep = "root ::= " + std::string(5000, '(') + "\"a\"" + std::string(5000, ')');
  EXPECT_NE(error(deep).find("nested too deeply"), std::string::npos);
  // Many copies of a repetition: bounded by the symbol budget, not memory.
  std::string wide = "root ::= x{4096}\nx ::= y{4096}\ny ::= \"a\"{4096}";
  EXPECT_TRUE(compileGrammarText(wide).isOk());  // sizes add up, they do not multiply
  std::string many = "root ::= \"\"";
  for (int k = 0; k < 600; ++k) many += " \"a\"{4096}";
  EXPECT_NE(error(many).find("too large"), std::string::npos);
}

// Long chains of rules: productive only through the whole chain (the analysis propagates from
// the last rule back; a pass-per-link fixpoint was quadratic: docs/benchmarks.md).
TEST(GrammarText, LongChainsOfRulesArePropagatedEndToEnd) {
  auto chain = [](int n, const std::string& last) {
    std::string text = "root ::= r0\n";
    for (int i = 0; i < n; ++i) text += "r" + std::to_string(i) + " ::= [a-c] r" + std::to_string(i + 1) + "\n";
    return text + "r" + std::to_string(n) + " ::= " + last + "\n";
  };
  auto g = compile(chain(20000, "\"end\""));
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(matches(g, std::string(20000, 'b') + "end"));
  EXPECT_FALSE(matches(g, std::string(19999, 'b') + "end"));
  // The last rule never ends: nothing is productive, whatever the chain's length.
  EXPECT_NE(error(chain(20000, "\"x\" r20000")).find("matches no string at all"), std::string::npos);
}

TEST(GrammarText, TheConstraintKindCompilesGrammarsAndTravelsByName) {
  auto g = compileConstraint({OutputConstraint::Kind::kGrammar, "root ::= \"yes\" | \"no\""});
  ASSERT_TRUE(g.isOk()) << g.status().message();
  EXPECT_TRUE(matches(*g, "yes"));
  EXPECT_FALSE(matches(*g, "maybe"));
  EXPECT_EQ(std::string(kindName(OutputConstraint::Kind::kGrammar)), "grammar");
  EXPECT_EQ(kindFromName("grammar"), OutputConstraint::Kind::kGrammar);
  EXPECT_FALSE(compileConstraint({OutputConstraint::Kind::kGrammar, "root ::= nope"}).isOk());
}

}  // namespace
}  // namespace turbine::structured
