// Real vocabularies: the vocab-only GGUF files in ../shared/data/tokenizers with the token ids
// their reference tokenizers produce. Every line of every file must match, and decode must give
// the input back (SentencePiece vocabularies may differ only by the leading space).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"

namespace turbine::model {
namespace {

const std::string kDataDir = TURBINE_SOURCE_DIR "/../shared/data/tokenizers";

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> splitInputs(const std::string& text) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t hit = text.find(sep); hit != std::string::npos; hit = text.find(sep, pos)) {
    out.push_back(text.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  if (pos < text.size()) out.push_back(text.substr(pos));
  return out;
}

std::vector<std::vector<int32_t>> readExpected(const std::string& path) {
  std::vector<std::vector<int32_t>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<int32_t> ids;
    std::istringstream ls(line);
    int32_t id = 0;
    while (ls >> id) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

// CPU seconds of this thread: robust to other jobs sharing the machine's cores.
double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

class VocabTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabTest, EncodeMatchesReferenceAndDecodeRoundTrips) {
  if (!std::filesystem::is_directory(kDataDir)) {
    GTEST_SKIP() << "no shared data folder " << kDataDir;
  }
  const std::string base = kDataDir + "/" + GetParam();
  auto gguf = GgufFile::open(base);
  ASSERT_TRUE(gguf.isOk()) << gguf.status().toString();
  auto tok = Tokenizer::fromGguf(*gguf);
  ASSERT_TRUE(tok.isOk()) << tok.status().toString();
  const auto inputs = splitInputs(readFile(base + ".inp"));
  const auto expected = readExpected(base + ".out");
  ASSERT_EQ(inputs.size(), expected.size());
  ASSERT_GT(inputs.size(), 0u);

  size_t encode_ok = 0, decode_ok = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto ids =
        (*tok)->encode(inputs[i], /*add_special_tokens=*/false, /*parse_special=*/false);
    if (ids == expected[i]) {
      ++encode_ok;
    } else {
      ADD_FAILURE() << GetParam() << " line " << i + 1 << " input '" << inputs[i]
                    << "'\n  expected:" << show(expected[i]) << "\n  got:     " << show(ids);
    }
    const std::string text = (*tok)->decode(expected[i]);
    const bool same =
        text == inputs[i] || ((*tok)->stripsLeadingSpace() && " " + text == inputs[i]);
    if (same) {
      ++decode_ok;
    } else {
      ADD_FAILURE() << GetParam() << " line " << i + 1 << " decode '" << text << "' != '"
                    << inputs[i] << "'";
    }
  }
  std::printf("[ vocab    ] %-32s encode %zu/%zu  decode %zu/%zu\n", GetParam(), encode_ok,
              inputs.size(), decode_ok, inputs.size());
  RecordProperty("encode_pass", static_cast<int>(encode_ok));
  RecordProperty("decode_pass", static_cast<int>(decode_ok));
}

INSTANTIATE_TEST_SUITE_P(Real, VocabTest,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
                                           "ggml-vocab-gpt-2.gguf", "ggml-vocab-starcoder.gguf",
                                           "ggml-vocab-falcon.gguf", "ggml-vocab-deepseek-llm.gguf",
                                           "ggml-vocab-deepseek-coder.gguf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

// The tokenizer.json path on the same real vocabularies: a tokenizer.json is written from the
// GGUF's tokens and merges with the pre-tokenizer of the model's own tokenizer.json, and must
// reproduce the reference ids too.
using json = nlohmann::json;

json hfJsonFromGguf(const GgufFile& g, const json& pre_tokenizer) {
  json vocab = json::object();
  const auto tokens = g.getStringArray("tokenizer.ggml.tokens").value();
  const auto types = g.getIntArray("tokenizer.ggml.token_type").value();
  json added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    if (types[i] == 3 || types[i] == 4) {
      added.push_back({{"id", i}, {"content", tokens[i]}, {"special", types[i] == 3}});
    }
  }
  json j;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = pre_tokenizer;
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", g.getStringArray("tokenizer.ggml.merges").value()}};
  return j;
}

json split(const std::string& regex) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", "Isolated"},
          {"invert", false}};
}

TEST(VocabHfJson, SameIdsThroughTokenizerJson) {
  if (!std::filesystem::is_directory(kDataDir)) {
    GTEST_SKIP() << "no shared data folder " << kDataDir;
  }
  const json byte_level_regex = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  const json byte_level_plain = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  const std::vector<std::pair<std::string, json>> cases = {
      {"ggml-vocab-gpt-2.gguf", byte_level_regex},
      {"ggml-vocab-falcon.gguf",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Punctuation"}, {"behavior", "Contiguous"}},
          byte_level_regex,
          {{"type", "Digits"}, {"individual_digits", false}},
          split("[0-9][0-9][0-9]")}}}},
      {"ggml-vocab-deepseek-coder.gguf",
       {{"type", "Sequence"},
        {"pretokenizers",
         {split("[\\r\\n]"),
          split("\\s?\\p{L}+"),
          split("\\s?\\p{P}+"),
          split(pretok_regex::kCjk),
          {{"type", "Digits"}, {"individual_digits", true}},
          byte_level_plain}}}},
  };
  for (const auto& [name, pre] : cases) {
    auto gguf = GgufFile::open(kDataDir + "/" + name);
    ASSERT_TRUE(gguf.isOk()) << gguf.status().toString();
    const std::string path =
        ::testing::TempDir() + "/vocab_" + std::to_string(::getpid()) + "_" + name + ".json";
    std::ofstream(path) << hfJsonFromGguf(*gguf, pre).dump();
    auto tok = Tokenizer::fromHfJson(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(tok.isOk()) << tok.status().toString();
    const auto inputs = splitInputs(readFile(kDataDir + "/" + name + ".inp"));
    const auto expected = readExpected(kDataDir + "/" + name + ".out");
    ASSERT_EQ(inputs.size(), expected.size());
    size_t ok = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto ids = (*tok)->encode(inputs[i], false, false);
      EXPECT_EQ(ids, expected[i]) << name << " line " << i + 1;
      EXPECT_EQ((*tok)->decode(ids), inputs[i]) << name << " line " << i + 1;
      ok += ids == expected[i];
    }
    std::printf("[ hf-json  ] %-32s encode %zu/%zu\n", name.c_str(), ok, inputs.size());
  }
}

// load(): a .gguf file, and a folder holding one .gguf file.
TEST(VocabLoad, GgufFileAndFolder) {
  if (!std::filesystem::is_directory(kDataDir)) {
    GTEST_SKIP() << "no shared data folder " << kDataDir;
  }
  const std::string file = kDataDir + "/ggml-vocab-gpt-2.gguf";
  auto direct = Tokenizer::load(file);
  ASSERT_TRUE(direct.isOk()) << direct.status().toString();
  const std::string dir = ::testing::TempDir() + "/vocab_dir_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(file, dir + "/model.gguf");
  auto folder = Tokenizer::load(dir);
  ASSERT_TRUE(folder.isOk()) << folder.status().toString();
  EXPECT_EQ((*folder)->encode("Hello world", false), (*direct)->encode("Hello world", false));
  EXPECT_EQ((*folder)->vocabSize(), 50257);
  EXPECT_EQ((*folder)->tokenId("Hello"), std::optional<int32_t>(15496));
  EXPECT_EQ((*folder)->eos(), 50256);
  std::filesystem::create_symlink(file, dir + "/second.gguf");
  auto two = Tokenizer::load(dir);
  EXPECT_FALSE(two.isOk());
  std::filesystem::remove_all(dir);
}

// Speed: 100 KB of mixed text encodes in well under a second on each kind of vocabulary.
TEST(VocabSpeed, HundredKilobytesEncodeFast) {
  if (!std::filesystem::is_directory(kDataDir)) {
    GTEST_SKIP() << "no shared data folder " << kDataDir;
  }
  std::string text;
  const std::string inp = readFile(kDataDir + "/ggml-vocab-gpt-2.gguf.inp");
  while (text.size() < 100 * 1024) text += inp;
  for (const char* name :
       {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-deepseek-llm.gguf"}) {
    auto gguf = GgufFile::open(kDataDir + "/" + name);
    ASSERT_TRUE(gguf.isOk()) << gguf.status().toString();
    auto tok = Tokenizer::fromGguf(*gguf);
    ASSERT_TRUE(tok.isOk()) << tok.status().toString();
    const double t0 = cpuSeconds();
    const auto ids = (*tok)->encode(text, false, false);
    const double s = cpuSeconds() - t0;
    std::printf("[ speed    ] %-32s %zu bytes -> %zu tokens in %.1f ms CPU (%.1f MB/s)\n", name,
                text.size(), ids.size(), s * 1e3, text.size() / s / 1e6);
    EXPECT_LT(s, 1.0) << name;
    EXPECT_GT(ids.size(), text.size() / 10);
    // A long single word (no pre-tokenizer split) must not be quadratic either.
    const std::string word(100 * 1024, 'a');
    const double t1 = cpuSeconds();
    const auto wids = (*tok)->encode(word, false, false);
    const double s1 = cpuSeconds() - t1;
    EXPECT_LT(s1, 1.0) << name << " long word";
    EXPECT_EQ((*tok)->decode(wids), word);
    // Nor a long run of spaces (the regexes' \s+(?!\S) backtracking) or of '<' (added tokens).
    for (const std::string& run :
         {"x" + std::string(100 * 1024, ' ') + "y", std::string(100 * 1024, '<')}) {
      const double t2 = cpuSeconds();
      const auto rids = (*tok)->encode(run, false, true);
      const double s2 = cpuSeconds() - t2;
      EXPECT_LT(s2, 1.0) << name << " run of '" << run[1] << "'";
      const std::string back = (*tok)->decode(rids);
      EXPECT_TRUE(back == run || " " + back == run) << name << " run of '" << run[1] << "'";
    }
  }
}

}  // namespace
}  // namespace turbine::model
