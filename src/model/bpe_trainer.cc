#include "model/bpe_trainer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <queue>
#include <unordered_map>

namespace turbine::model {

const char* const kLlama3PreTokenizerRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

namespace fs = std::filesystem;

// Appends the UTF-8 encoding of the GPT-2 byte-alphabet character of `b`: printable Latin-1
// bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves, the other 68 bytes map to
// U+0100 + their rank among those bytes.
void appendByteChar(uint8_t b, std::string* out) {
  auto printable = [](int x) {
    return (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
  };
  uint32_t cp = b;
  if (!printable(b)) {
    uint32_t rank = 0;
    for (int x = 0; x < b; ++x) rank += printable(x) ? 0 : 1;
    cp = 0x100 + rank;
  }
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Counts the pre-tokenized pieces of `text`.
Result<std::unordered_map<std::string, int64_t>> countPieces(std::string_view text) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kLlama3PreTokenizerRegex),
                                 PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off,
                                 nullptr);
  if (re == nullptr) return internalError("bpe trainer: pre-tokenizer regex does not compile");
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  std::unordered_map<std::string, int64_t> counts;
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0, md,
                         nullptr);
    if (rc < 0) break;  // no more matches (or an error: stop, the text so far counts)
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] <= ov[0]) {  // empty match: step over one byte
      pos = ov[0] + 1;
      continue;
    }
    ++counts[std::string(text.substr(ov[0], ov[1] - ov[0]))];
    pos = ov[1];
  }
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return counts;
}

using Pair = uint64_t;  // (left id << 32) | right id
Pair makePair(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t leftOf(Pair p) { return static_cast<int32_t>(p >> 32); }
int32_t rightOf(Pair p) { return static_cast<int32_t>(p & 0xffffffffu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// The merge loop, with incremental pair counts: only the words that contain the merged pair are
// touched, and a lazy max-heap keyed by (count, -pair) yields the next pair to merge.
class Trainer {
 public:
  Trainer(std::vector<Word> words, std::vector<std::string> tokens)
      : words_(std::move(words)), tokens_(std::move(tokens)), stamp_(words_.size(), -1) {
    for (size_t w = 0; w < words_.size(); ++w) addWordPairs(static_cast<int32_t>(w), +1);
    for (const auto& [p, c] : counts_) heap_.push({c, p});
  }

  // Learns merges until `target_tokens` tokens exist or no pair is left.
  void run(size_t target_tokens, std::vector<std::string>* merges) {
    int32_t merge_index = 0;
    while (tokens_.size() < target_tokens && !heap_.empty()) {
      auto [c, p] = heap_.top();
      heap_.pop();
      auto it = counts_.find(p);
      if (it == counts_.end() || it->second != c) continue;  // stale entry
      const std::string text = tokens_[leftOf(p)] + tokens_[rightOf(p)];
      merges->push_back(tokens_[leftOf(p)] + " " + tokens_[rightOf(p)]);
      auto [tit, fresh] = ids_.emplace(text, static_cast<int32_t>(tokens_.size()));
      if (fresh) tokens_.push_back(text);
      applyMerge(p, tit->second, merge_index++);
    }
  }

  std::vector<std::string>& tokens() { return tokens_; }

 private:
  struct HeapEntry {
    int64_t count;
    Pair pair;
    bool operator<(const HeapEntry& o) const {  // max-heap: higher count, then smaller pair
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };

  void addWordPairs(int32_t w, int sign) {
    const Word& word = words_[w];
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      Pair p = makePair(word.symbols[i], word.symbols[i + 1]);
      counts_[p] += sign * word.count;
      if (sign > 0) where_[p].push_back(w);
      touched_.push_back(p);
    }
  }

  void applyMerge(Pair p, int32_t new_id, int32_t merge_index) {
    const int32_t a = leftOf(p), b = rightOf(p);
    std::vector<int32_t> affected = std::move(where_[p]);
    where_.erase(p);
    touched_.clear();
    for (int32_t w : affected) {
      if (stamp_[w] == merge_index) continue;  // listed twice
      stamp_[w] = merge_index;
      std::vector<int32_t>& s = words_[w].symbols;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;  // an earlier merge consumed the occurrence
      addWordPairs(w, -1);
      size_t out = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out++] = new_id;
          ++i;
        } else {
          s[out++] = s[i];
        }
      }
      s.resize(out);
      addWordPairs(w, +1);
    }
    counts_.erase(p);
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (Pair q : touched_) {
      auto it = counts_.find(q);
      if (it == counts_.end()) continue;
      if (it->second <= 0) {
        counts_.erase(it);
      } else {
        heap_.push({it->second, q});
      }
    }
  }

  std::vector<Word> words_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<Pair, int64_t> counts_;
  std::unordered_map<Pair, std::vector<int32_t>> where_;
  std::priority_queue<HeapEntry> heap_;
  std::vector<int32_t> stamp_;
  std::vector<Pair> touched_;
};

}  // namespace

std::string byteLevelEncodeBytes(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) appendByteChar(static_cast<uint8_t>(c), &out);
  return out;
}

std::vector<std::string> defaultCorpusFiles() {
  std::vector<std::string> out;
  auto addSorted = [&](const std::string& dir, const std::string& ext) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec) && (ext.empty() || it->path().extension() == ext)) {
        found.push_back(it->path().string());
      }
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  };
  addSorted("/usr/share/common-licenses", "");
  addSorted("/usr/lib/x86_64-linux-gnu/perl-base", ".pm");
  addSorted("/usr/share/perl5/Debconf", ".pm");
  // perl-base's own scripts and Unicode tables: less natural text, but enough distinct pieces to
  // learn a 32000-token vocabulary.
  addSorted("/usr/lib/x86_64-linux-gnu/perl-base", ".pl");
  return out;
}

Result<BpeVocab> trainBpeOnText(std::string_view text, const BpeTrainerOptions& options) {
  const int32_t specials = static_cast<int32_t>(options.special_tokens.size());
  if (options.vocab_size < 256 + specials) {
    return invalidArgument("bpe trainer: vocab_size " + std::to_string(options.vocab_size) +
                           " is below 256 bytes + " + std::to_string(specials) + " specials");
  }
  TURBINE_ASSIGN_OR_RETURN(auto pieces, countPieces(text));
  std::vector<Word> words;
  words.reserve(pieces.size());
  for (const auto& [piece, count] : pieces) {
    Word w{{}, count};
    for (char c : piece) w.symbols.push_back(static_cast<uint8_t>(c));
    words.push_back(std::move(w));
  }
  std::vector<std::string> tokens(256);
  for (int b = 0; b < 256; ++b) appendByteChar(static_cast<uint8_t>(b), &tokens[b]);
  BpeVocab v;
  v.corpus_bytes = text.size();
  Trainer trainer(std::move(words), std::move(tokens));
  trainer.run(static_cast<size_t>(options.vocab_size - specials), &v.merges);
  v.tokens = std::move(trainer.tokens());
  v.num_learned = static_cast<int32_t>(v.tokens.size()) - 256;
  v.first_special_id = static_cast<int32_t>(v.tokens.size());
  for (const auto& s : options.special_tokens) v.tokens.push_back(s);
  for (int32_t n = 0; static_cast<int32_t>(v.tokens.size()) < options.vocab_size; ++n) {
    v.tokens.push_back("<|reserved_" + std::to_string(n) + "|>");
  }
  return v;
}

Result<BpeVocab> trainBpe(const BpeTrainerOptions& options) {
  std::vector<std::string> files = options.files.empty() ? defaultCorpusFiles() : options.files;
  std::string text;
  for (const auto& f : files) {
    if (text.size() >= options.max_bytes) break;
    std::ifstream in(f, std::ios::binary);
    if (!in) continue;  // a missing file is skipped: the corpus is best effort
    std::string content((std::istreambuf_iterator<char>(in)), {});
    content.resize(std::min(content.size(), options.max_bytes - text.size()));
    text += content;
  }
  if (text.empty()) return notFound("bpe trainer: none of the corpus files could be read");
  return trainBpeOnText(text, options);
}

}  // namespace turbine::model
