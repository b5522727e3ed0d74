// Normalizer: the text rewrites a tokenizer applies before pre-tokenization (tokenizers'
// `normalizer`): Unicode normalization forms (via ICU), Prepend, Replace, Lowercase, Strip.
// Thread safety: immutable after construction; apply() may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/pretokenizer.h"

namespace turbine::model {

struct NormalizerStep {
  enum class Kind { kNfc, kNfkc, kNfd, kNfkd, kPrepend, kReplace, kLowercase, kStrip };
  Kind kind = Kind::kNfc;
  std::string text;                              // kPrepend: the prefix; kReplace: the replacement
  std::shared_ptr<const Regex> regex;            // kReplace: the pattern (literal or regex)
  bool strip_left = false, strip_right = false;  // kStrip
};

class Normalizer {
 public:
  Normalizer() = default;
  explicit Normalizer(std::vector<NormalizerStep> steps) : steps_(std::move(steps)) {}

  static NormalizerStep unicodeForm(NormalizerStep::Kind kind);
  static NormalizerStep prepend(std::string prefix);
  static Result<NormalizerStep> replace(std::string_view pattern, std::string content,
                                        bool literal);

  // `text` must be valid UTF-8; the result is valid UTF-8. An empty text stays empty (Prepend
  // does not apply to it, as in tokenizers).
  std::string apply(std::string_view text) const;

  bool empty() const { return steps_.empty(); }
  void append(NormalizerStep step) { steps_.push_back(std::move(step)); }

 private:
  std::vector<NormalizerStep> steps_;
};

}  // namespace turbine::model
