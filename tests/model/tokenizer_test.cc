// Tokenizer from small tokenizer.json files written by the test: byte-level BPE with the Llama 3
// split, SentencePiece-style BPE with byte fallback, added/special tokens, post-processor and
// tokenizer_config handling, errors, and the incremental decoder on split characters.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/pretokenizer.h"
#include "model/unicode.h"

namespace turbine::model {
namespace {

using json = nlohmann::json;

std::string writeTemp(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/tok_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// Byte-level vocab: id b = the alphabet character of byte b; merges appended after.
struct ByteLevelSpec {
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order, byte-level texts
  json added = json::array();
  json post_processor = nullptr;
  json normalizer = nullptr;
};

json byteLevelJson(const ByteLevelSpec& spec) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    vocab[unicode::toByteLevel(std::string(1, static_cast<char>(b)))] = b;
  json merges = json::array();
  int next = 256;
  for (const auto& [a, b] : spec.merges) {
    merges.push_back(a + " " + b);
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
  }
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = spec.added;
  j["normalizer"] = spec.normalizer;
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"},
                           {"pattern", {{"Regex", pretok_regex::kLlama3}}},
                           {"behavior", "Isolated"},
                           {"invert", false}},
                          {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", false}}}}};
  j["post_processor"] = spec.post_processor;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},          {"dropout", nullptr},    {"unk_token", nullptr},
                {"byte_fallback", false}, {"ignore_merges", true}, {"vocab", vocab},
                {"merges", merges}};
  return j;
}

json addedToken(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

std::unique_ptr<Tokenizer> load(const json& j, const std::string& name,
                                const std::optional<json>& config = std::nullopt) {
  const std::string path = writeTemp(name + ".json", j.dump());
  std::optional<std::string> cfg_path;
  if (config) cfg_path = writeTemp(name + "_config.json", config->dump());
  auto tok = Tokenizer::fromHfJson(path, cfg_path);
  EXPECT_TRUE(tok.isOk()) << tok.status().toString();
  return tok.isOk() ? std::move(tok).value() : nullptr;
}

const std::string G = "\xC4\xA0";  // 'Ġ': the byte-level character of ' '

ByteLevelSpec helloSpec() {
  ByteLevelSpec s;
  s.merges = {{"h", "e"}, {"l", "l"},      {"he", "ll"}, {"hell", "o"},    {G, "w"},
              {"o", "r"}, {G + "w", "or"}, {"l", "d"},   {G + "wor", "ld"}};
  s.added = json::array({addedToken(300, "<|begin_of_text|>", true),
                         addedToken(301, "<|im_start|>", true), addedToken(302, "<|im_end|>", true),
                         addedToken(303, "<tool>", false)});
  return s;
}

std::vector<int32_t> idsOf(const Tokenizer& t, std::initializer_list<std::string> texts) {
  std::vector<int32_t> out;
  for (const auto& s : texts) {
    auto id = t.tokenId(s);
    EXPECT_TRUE(id.has_value()) << "no token '" << s << "'";
    out.push_back(id.value_or(-1));
  }
  return out;
}

TEST(TokenizerJson, ByteLevelMergesByRank) {
  auto tok = load(byteLevelJson(helloSpec()), "hello");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->vocabSize(), 304);
  EXPECT_EQ(tok->encode("hello world", false), idsOf(*tok, {"hello", G + "world"}));
  // "hellor": no merge "hello r"; 'o r' ranks after 'hell o', so "hello" wins over "or".
  EXPECT_EQ(tok->encode("hellor", false), idsOf(*tok, {"hello", "r"}));
  EXPECT_EQ(tok->decode(tok->encode("hello world", false)), "hello world");

  // Same vocabulary, 'e l' ranked first: the merge order changes the result.
  ByteLevelSpec other = helloSpec();
  other.merges.insert(other.merges.begin(), {"e", "l"});
  json other_json = byteLevelJson(other);
  auto tok_ignore = load(other_json, "hello_el_ignore");
  ASSERT_TRUE(tok_ignore);  // ignore_merges (Llama 3): a piece that is a token is kept whole
  EXPECT_EQ(tok_ignore->encode("hello", false), idsOf(*tok_ignore, {"hello"}));
  other_json["model"]["ignore_merges"] = false;
  auto tok2 = load(other_json, "hello_el");
  ASSERT_TRUE(tok2);
  EXPECT_EQ(tok2->encode("hello", false), idsOf(*tok2, {"h", "el", "l", "o"}));
}

TEST(TokenizerJson, Llama3SplitPieces) {
  auto pre = PreTokenizer::splitStep(pretok_regex::kLlama3, SplitBehavior::kIsolated);
  ASSERT_TRUE(pre.isOk()) << pre.status().toString();
  PreTokenizer p({*pre});
  const std::vector<std::string> want = {"I",      "'M",   " ",      "123", "45",
                                         " hello", "\n\n", " world", "!!",  "   "};
  EXPECT_EQ(p.split("I'M 12345 hello\n\n world!!   ", true), want);
  // Non-ASCII letters and numbers are Unicode-aware (UCP): 'é' is a letter, '٣' a digit.
  const std::vector<std::string> want2 = {"caf\xC3\xA9", " ", "\xD9\xA3"};
  EXPECT_EQ(p.split("caf\xC3\xA9 \xD9\xA3", true), want2);
}

TEST(TokenizerJson, SpecialAndAddedTokens) {
  auto tok = load(byteLevelJson(helloSpec()), "special");
  ASSERT_TRUE(tok);
  const std::string text = "<|im_start|>hello<|im_end|> world<tool>";
  const auto with = tok->encode(text, false, /*parse_special=*/true);
  std::vector<int32_t> want = {301, tok->tokenId("hello").value(), 302,
                               tok->tokenId(G + "world").value(), 303};
  EXPECT_EQ(with, want);
  EXPECT_TRUE(tok->isSpecial(301));
  EXPECT_FALSE(tok->isSpecial(303));
  EXPECT_FALSE(tok->isSpecial(tok->tokenId("hello").value()));
  EXPECT_EQ(tok->decode(with), text);
  EXPECT_EQ(tok->decode(with, /*skip_special_tokens=*/true), "hello world<tool>");

  // Not parsing specials: the markers are plain text, but the non-special <tool> still matches.
  const auto without = tok->encode(text, false, /*parse_special=*/false);
  EXPECT_EQ(std::count(without.begin(), without.end(), 301), 0);
  EXPECT_EQ(std::count(without.begin(), without.end(), 302), 0);
  EXPECT_EQ(without.back(), 303);
  EXPECT_EQ(tok->decode(without), text);
  // Longest match first: "<|im_start|>" is preferred over a shorter added token sharing a prefix.
  EXPECT_EQ(tok->encode("<|im_start|><|im_start|>", false), std::vector<int32_t>({301, 301}));
}

TEST(TokenizerJson, BosFromPostProcessorAndConfig) {
  ByteLevelSpec spec = helloSpec();
  spec.post_processor = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens",
       {{"<|begin_of_text|>",
         {{"id", "<|begin_of_text|>"}, {"ids", {300}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
  auto tok = load(byteLevelJson(spec), "bos");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->bos(), 300);
  EXPECT_TRUE(tok->addsBos());
  EXPECT_EQ(tok->encode("hello", true), std::vector<int32_t>({300, tok->tokenId("hello").value()}));
  EXPECT_EQ(tok->encode("hello", false), std::vector<int32_t>({tok->tokenId("hello").value()}));

  // tokenizer_config.json turns BOS off and names the EOS.
  auto tok2 = load(byteLevelJson(spec), "bos_cfg",
                   json{{"add_bos_token", false}, {"eos_token", "<|im_end|>"}});
  ASSERT_TRUE(tok2);
  EXPECT_FALSE(tok2->addsBos());
  EXPECT_EQ(tok2->eos(), 302);
  EXPECT_EQ(tok2->encode("hello", true).size(), 1u);
}

TEST(TokenizerJson, NfcNormalizer) {
  ByteLevelSpec spec = helloSpec();
  spec.normalizer = {{"type", "NFC"}};
  auto tok = load(byteLevelJson(spec), "nfc");
  ASSERT_TRUE(tok);
  // e + U+0301 COMBINING ACUTE is composed to U+00E9 before BPE.
  EXPECT_EQ(tok->encode("e\xCC\x81", false), tok->encode("\xC3\xA9", false));
  EXPECT_EQ(tok->encode("\xC3\xA9", false), std::vector<int32_t>({0xC3, 0xA9}));
}

// SentencePiece-style (Llama 2 tokenizer.json): Prepend + Replace normalizer, byte fallback.
json spmJson() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  const std::string m = "\xE2\x96\x81";  // '▁'
  int next = 259;
  for (const std::string& t : std::vector<std::string>{m, "h", "i", m + "h", m + "hi"}) {
    vocab[t] = next++;
  }
  json j;
  j["added_tokens"] = {addedToken(0, "<unk>", true), addedToken(1, "<s>", true),
                       addedToken(2, "</s>", true)};
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", m}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", m}}}}};
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["model"] = {{"type", "BPE"},    {"unk_token", "<unk>"}, {"byte_fallback", true},
                {"fuse_unk", true}, {"vocab", vocab},       {"merges", {m + " h", m + "h i"}}};
  return j;
}

TEST(TokenizerJson, SentencePieceByteFallback) {
  auto tok = load(spmJson(), "spm", json{{"add_bos_token", true}, {"bos_token", "<s>"}});
  ASSERT_TRUE(tok);
  const std::string m = "\xE2\x96\x81";
  const std::string text = "hi \xF0\x9F\x98\x80";  // "hi 😀"
  const auto ids = tok->encode(text, true);
  const std::vector<int32_t> want = {1,
                                     tok->tokenId(m + "hi").value(),
                                     tok->tokenId(m).value(),
                                     3 + 0xF0,
                                     3 + 0x9F,
                                     3 + 0x98,
                                     3 + 0x80};
  EXPECT_EQ(ids, want);
  EXPECT_EQ(tok->decode(ids, /*skip_special_tokens=*/true), text);
  EXPECT_TRUE(tok->stripsLeadingSpace());
}

TEST(IncrementalDecoder, SentencePieceBytesHeldUntilCharacterComplete) {
  auto tok = load(spmJson(), "spm_inc");
  ASSERT_TRUE(tok);
  const auto ids = tok->encode("hi \xF0\x9F\x98\x80", false);
  ASSERT_EQ(ids.size(), 6u);
  IncrementalDecoder dec(*tok);
  EXPECT_EQ(dec.step(ids[0]), "hi");  // leading space of the dummy prefix dropped
  EXPECT_EQ(dec.step(ids[1]), " ");
  EXPECT_EQ(dec.step(ids[2]), "");
  EXPECT_EQ(dec.step(ids[3]), "");
  EXPECT_EQ(dec.step(ids[4]), "");
  EXPECT_EQ(dec.pendingBytes(), 3u);
  EXPECT_EQ(dec.step(ids[5]), "\xF0\x9F\x98\x80");
  EXPECT_EQ(dec.flush(), "");
  // Continuing after a prompt: the space is kept.
  IncrementalDecoder cont(*tok, false, /*at_sequence_start=*/false);
  EXPECT_EQ(cont.step(ids[0]), " hi");
}

TEST(IncrementalDecoder, ByteLevelEmojiAndCjkNeverSplit) {
  ByteLevelSpec spec;  // bytes only: every character of 2+ bytes spans several tokens
  auto tok = load(byteLevelJson(spec), "bytes_only");
  ASSERT_TRUE(tok);
  const std::string text =
      "a\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82!";  // "aé 世界 🙂!"
  const auto ids = tok->encode(text, false);
  ASSERT_EQ(ids.size(), text.size());  // one token per byte
  IncrementalDecoder dec(*tok);
  std::string joined;
  size_t empty_steps = 0;
  for (int32_t id : ids) {
    const std::string piece = dec.step(id);
    EXPECT_TRUE(unicode::isValidUtf8(piece)) << "split character emitted";
    if (piece.empty()) ++empty_steps;
    joined += piece;
  }
  joined += dec.flush();
  EXPECT_EQ(joined, text);
  EXPECT_EQ(empty_steps, 1u + 2u + 2u + 3u);  // continuation bytes held: é, 世, 界, 🙂
}

TEST(IncrementalDecoder, InvalidBytesBecomeReplacementCharacter) {
  ByteLevelSpec spec;
  auto tok = load(byteLevelJson(spec), "bytes_bad");
  ASSERT_TRUE(tok);
  IncrementalDecoder dec(*tok);
  EXPECT_EQ(dec.step(0xE4), "");  // could start a 3-byte character
  EXPECT_EQ(dec.step('x'),
            "\xEF\xBF\xBD"
            "x");  // it cannot any more
  EXPECT_EQ(dec.step(0xF0), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");  // truncated at the end
  const std::vector<int32_t> ids = {0xFF, 'a'};
  EXPECT_EQ(tok->decode(ids),
            "\xEF\xBF\xBD"
            "a");
}

TEST(Unicode, SanitizeAndCompletePrefix) {
  EXPECT_EQ(unicode::sanitizeUtf8("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(unicode::sanitizeUtf8("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(unicode::sanitizeUtf8("\xE4\xB8\x96"), "\xE4\xB8\x96");
  EXPECT_EQ(unicode::completePrefixLength("ab\xF0\x9F\x99"), 2u);
  EXPECT_EQ(unicode::completePrefixLength("ab\xF0\x9F\x99\x82"), 6u);
  EXPECT_EQ(unicode::completePrefixLength("ab\xFF"), 3u);
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(unicode::charToByte(unicode::byteToChar(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(unicode::toByteLevel(" "), G);
}

TEST(TokenizerErrors, ClearStatuses) {
  auto missing = Tokenizer::fromHfJson("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  auto bad = Tokenizer::fromHfJson(writeTemp("bad.json", "{not json"));
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);

  json wp = byteLevelJson(helloSpec());
  wp["model"]["type"] = "WordPiece";
  auto w = Tokenizer::fromHfJson(writeTemp("wp.json", wp.dump()));
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(w.status().message().find("WordPiece"), std::string::npos);

  json badmerge = byteLevelJson(helloSpec());
  badmerge["model"]["merges"].push_back("zzz qqq");
  auto bm = Tokenizer::fromHfJson(writeTemp("badmerge.json", badmerge.dump()));
  ASSERT_FALSE(bm.isOk());
  EXPECT_NE(bm.status().message().find("zzz qqq"), std::string::npos);

  json badre = byteLevelJson(helloSpec());
  badre["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "([a-";
  auto br = Tokenizer::fromHfJson(writeTemp("badre.json", badre.dump()));
  ASSERT_FALSE(br.isOk());
  EXPECT_NE(br.status().message().find("pre_tokenizer"), std::string::npos);

  auto folder = Tokenizer::load(::testing::TempDir() + "/no_such_model_dir");
  EXPECT_FALSE(folder.isOk());
}

TEST(TokenizerJson, LoadFromFolder) {
  const std::string dir = ::testing::TempDir() + "/tok_folder_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << byteLevelJson(helloSpec()).dump();
  std::ofstream(dir + "/tokenizer_config.json")
      << json{{"eos_token", {{"content", "<|im_end|>"}}}}.dump();
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.isOk()) << tok.status().toString();
  EXPECT_EQ((*tok)->eos(), 302);
  EXPECT_EQ((*tok)->encode("hello", false).size(), 1u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace turbine::model
