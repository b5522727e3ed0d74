// BPE trainer: merge semantics on a hand-checked text, determinism, exact vocabulary size with
// reserved padding, and the default corpus.
#include <gtest/gtest.h>

#include <set>

#include "model/bpe_trainer.h"

namespace turbine::model {
namespace {

TEST(BpeTrainerTest, ByteLevelAlphabet) {
  EXPECT_EQ(byteLevelEncodeBytes(" "), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byteLevelEncodeBytes("\n"), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byteLevelEncodeBytes("a!~"), "a!~");
  EXPECT_EQ(byteLevelEncodeBytes("\xE2\x82\xAC"), "\xC3\xA2\xC4\xA4\xC2\xAC");  // "âĤ¬"
  std::set<std::string> all;
  for (int b = 0; b < 256; ++b) all.insert(byteLevelEncodeBytes(std::string(1, char(b))));
  EXPECT_EQ(all.size(), 256u);  // a bijection
}

TEST(BpeTrainerTest, MergesMostFrequentPairsFirst) {
  // Pieces: "low"×3, " low"×2, " lower"×1 ... the pair (l,o) is the most frequent.
  BpeTrainerOptions o;
  o.special_tokens = {"<|end|>"};
  o.vocab_size = 256 + 3 + 1;
  auto v = trainBpeOnText("low low low lower", o);
  ASSERT_TRUE(v.isOk()) << v.status().toString();
  ASSERT_EQ(v->tokens.size(), 260u);
  // Pieces: "low", " low", " low", " lower": pairs (l,o)=4, (o,w)=4, (Ġ,l)=3, (w,e)=1, (e,r)=1.
  // Ties go to the smaller id pair: ('l','o') = (108,111) < ('o','w') = (111,119).
  ASSERT_GE(v->merges.size(), 3u);
  EXPECT_EQ(v->merges[0], "l o");
  EXPECT_EQ(v->merges[1], "lo w");
  EXPECT_EQ(v->merges[2], "\xC4\xA0 low");
  EXPECT_EQ(v->tokens[256], "lo");
  EXPECT_EQ(v->tokens[257], "low");
  EXPECT_EQ(v->tokens[258], "\xC4\xA0low");
  EXPECT_EQ(v->first_special_id, 259);
  EXPECT_EQ(v->tokens[259], "<|end|>");
}

TEST(BpeTrainerTest, PadsWithReservedTokensWhenTextRunsOut) {
  BpeTrainerOptions o;
  o.vocab_size = 300;
  auto v = trainBpeOnText("ab ab", o);
  ASSERT_TRUE(v.isOk());
  ASSERT_EQ(v->tokens.size(), 300u);
  // Pieces "ab", " ab": merges (a,b) then (Ġ,ab) and nothing else.
  EXPECT_EQ(v->num_learned, 2);
  EXPECT_EQ(v->tokens[v->first_special_id], "<|endoftext|>");
  EXPECT_EQ(v->tokens[v->first_special_id + 2], "<|im_end|>");
  EXPECT_EQ(v->tokens[v->first_special_id + 3], "<|reserved_0|>");
  EXPECT_EQ(v->tokens.back(), "<|reserved_" + std::to_string(300 - 256 - 2 - 3 - 1) + "|>");
}

TEST(BpeTrainerTest, RejectsTooSmallVocab) {
  BpeTrainerOptions o;
  o.vocab_size = 200;
  EXPECT_FALSE(trainBpeOnText("x", o).isOk());
}

TEST(BpeTrainerTest, DefaultCorpusIsDeterministicAndUnique) {
  BpeTrainerOptions o;
  o.vocab_size = 4096;
  o.max_bytes = 1 << 20;
  auto a = trainBpe(o);
  if (!a.isOk() && a.status().code() == StatusCode::kNotFound) {
    GTEST_SKIP() << "no corpus files on this machine: " << a.status().message();
  }
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  auto b = trainBpe(o);
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(a->merges, b->merges);
  EXPECT_EQ(a->tokens.size(), 4096u);
  EXPECT_EQ(a->num_learned, 4096 - 256 - 3) << "1 MiB of text should fill a 4096 vocabulary";
  std::set<std::string> unique(a->tokens.begin(), a->tokens.end());
  EXPECT_EQ(unique.size(), a->tokens.size());
  // Every merge's parts are tokens of lower id than the result, and the result exists.
  std::map<std::string, int> id;
  for (size_t i = 0; i < a->tokens.size(); ++i) id[a->tokens[i]] = static_cast<int>(i);
  for (const auto& m : a->merges) {
    size_t sp = m.find(' ');
    ASSERT_NE(sp, std::string::npos) << m;
    std::string l = m.substr(0, sp), r = m.substr(sp + 1);
    ASSERT_TRUE(id.count(l) && id.count(r) && id.count(l + r)) << m;
    EXPECT_LT(id[l], id[l + r]);
    EXPECT_LT(id[r], id[l + r]);
  }
}

}  // namespace
}  // namespace turbine::model
