// Pre-tokenizers: split normalized text into pieces before BPE, with the semantics of Hugging
// Face `tokenizers` (each step splits every piece produced by the previous step; the ByteLevel
// step also maps the bytes of each piece to the GPT-2 byte alphabet, so later steps see mapped
// text, exactly as in `tokenizers`).
// Regexes run on PCRE2 in UTF + UCP mode (\p{L}, \s, \w are Unicode-aware), multi-line so that
// `$` behaves as in Oniguruma's Ruby syntax that `tokenizers` uses.
// Thread safety: a built PreTokenizer is immutable; split() may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace turbine::model {

// A compiled PCRE2 pattern (JIT-compiled when available). Thread-safe to match from many threads.
class Regex {
 public:
  // `literal`: the pattern is a plain string, not a regex.
  static Result<std::shared_ptr<const Regex>> compile(std::string_view pattern,
                                                      bool literal = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls fn(begin, end) for every non-overlapping match in `subject` (valid UTF-8), left to right.
  // Empty matches are skipped.
  template <typename Fn>
  void forEachMatch(std::string_view subject, Fn&& fn) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  // Finds the first match at or after `from`; false when none.
  bool next(std::string_view subject, size_t from, void* match_data, size_t* b, size_t* e) const;
  void* newMatchData() const;
  static void freeMatchData(void* md);

  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// How a Split step turns matches into pieces (the `behavior` of tokenizers' Split).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
Result<SplitBehavior> parseSplitBehavior(std::string_view name);

// One step of a pre-tokenizer pipeline.
struct PreTokenizerStep {
  enum class Kind {
    kSplit,      // regex + behavior (+ invert)
    kByteLevel,  // optional GPT-2 regex split, then map bytes to the byte alphabet
    kMetaspace,  // ' ' -> replacement, optional prepend, optional split before replacement
  };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;  // kSplit, and kByteLevel when use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;                                              // kByteLevel
  std::string replacement;                                                    // kMetaspace ("▁")
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;  // kMetaspace
  bool split = true;                                                          // kMetaspace
};

// The regexes of well-known pre-tokenizers (as in each model's tokenizer.json).
namespace pretok_regex {
extern const char* const kGpt2;
extern const char* const kLlama3;
extern const char* const kQwen2;
extern const char* const kDeepSeekLlmLetters;
extern const char* const kDeepSeekLlmPunct;
extern const char* const kCjk;
extern const char* const kPunctuation;  // Rust's is_ascii_punctuation || Unicode P*
}  // namespace pretok_regex

class PreTokenizer {
 public:
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {}

  // Builds a step list: helpers used by the tokenizer.json loader and the GGUF presets.
  static Result<PreTokenizerStep> splitStep(std::string_view pattern, SplitBehavior behavior,
                                            bool invert = false, bool literal = false);
  static Result<PreTokenizerStep> byteLevelStep(bool add_prefix_space, bool use_regex);
  static Result<PreTokenizerStep> digitsStep(bool individual_digits);
  static Result<PreTokenizerStep> punctuationStep(SplitBehavior behavior);

  // The pipeline for GGUF `tokenizer.ggml.pre` = `name` of a byte-level BPE vocab.
  // Unimplemented naming the value when unknown. Sets *ignore_merges and *nfc for the presets
  // whose tokenizer.json asks for them (Llama 3; Qwen2's NFC normalizer).
  static Result<PreTokenizer> forGgufPre(std::string_view name, bool* ignore_merges, bool* nfc);

  // Splits `text` (valid UTF-8); `first_segment` says whether the text starts the input (for
  // Metaspace prepend_scheme "first"). Returns the pieces (in the mapped alphabet after ByteLevel).
  std::vector<std::string> split(std::string_view text, bool first_segment) const;

  bool empty() const { return steps_.empty(); }
  bool hasByteLevel() const;
  void append(PreTokenizerStep step) { steps_.push_back(std::move(step)); }

 private:
  std::vector<PreTokenizerStep> steps_;
};

// ---- implementation of the template ----
template <typename Fn>
void Regex::forEachMatch(std::string_view subject, Fn&& fn) const {
  void* md = newMatchData();
  size_t from = 0, b = 0, e = 0;
  while (from <= subject.size() && next(subject, from, md, &b, &e)) {
    if (e > b) {
      fn(b, e);
      from = e;
    } else {  // empty match: step over one character
      from = b + 1;
      while (from < subject.size() && (static_cast<unsigned char>(subject[from]) & 0xC0) == 0x80) {
        ++from;
      }
    }
  }
  freeMatchData(md);
}

}  // namespace turbine::model
