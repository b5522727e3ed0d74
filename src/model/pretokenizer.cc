// Pre-tokenizer steps on PCRE2, and the presets named by GGUF `tokenizer.ggml.pre`.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/pretokenizer.h"

#include <pcre2.h>

#include "model/unicode.h"

namespace turbine::model {

namespace pretok_regex {
const char* const kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM: letters of the scripts its vocabulary covers, one optional leading space.
const char* const kDeepSeekLlmLetters =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293"
    "\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c"
    "\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5"
    "\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
    "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59"
    "\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc"
    "\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
    "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee"
    "\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e"
    "\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f"
    "\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2"
    "\U000118a0-\U000118df\U0001e900-\U0001e943]+";
const char* const kDeepSeekLlmPunct =
    "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+";
const char* const kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";
const char* const kPunctuation = R"([\p{P}!-/:-@\[-`{-~])";
}  // namespace pretok_regex

// ---------------------------------------------------------------- Regex

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Result<std::shared_ptr<const Regex>> Regex::compile(std::string_view pattern, bool literal) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // PCRE2_LITERAL admits only a few other options.
  const uint32_t opts = literal ? (PCRE2_UTF | PCRE2_NO_UTF_CHECK | PCRE2_LITERAL)
                                : (PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_UTF_CHECK);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   opts, &err, &err_off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return invalidArgument("regex '" + std::string(pattern) +
                           "': " + reinterpret_cast<const char*>(buf) + " at offset " +
                           std::to_string(err_off));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: the interpreter is the fallback
  std::shared_ptr<Regex> re(new Regex());
  re->pattern_ = std::string(pattern);
  re->code_ = code;
  return std::shared_ptr<const Regex>(std::move(re));
}

void* Regex::newMatchData() const {
  return pcre2_match_data_create_from_pattern(static_cast<pcre2_code*>(code_), nullptr);
}

void Regex::freeMatchData(void* md) { pcre2_match_data_free(static_cast<pcre2_match_data*>(md)); }

bool Regex::next(std::string_view subject, size_t from, void* md, size_t* b, size_t* e) const {
  auto* data = static_cast<pcre2_match_data*>(md);
  const int rc =
      pcre2_match(static_cast<pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                  subject.size(), from, PCRE2_NO_UTF_CHECK, data, nullptr);
  if (rc < 0) return false;
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
  *b = ov[0];
  *e = ov[1];
  return true;
}

// ---------------------------------------------------------------- steps

Result<SplitBehavior> parseSplitBehavior(std::string_view name) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return invalidArgument("unknown split behavior '" + std::string(name) + "'");
}

Result<PreTokenizerStep> PreTokenizer::splitStep(std::string_view pattern, SplitBehavior behavior,
                                                 bool invert, bool literal) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kSplit;
  TURBINE_ASSIGN_OR_RETURN(step.regex, Regex::compile(pattern, literal));
  step.behavior = behavior;
  step.invert = invert;
  return step;
}

Result<PreTokenizerStep> PreTokenizer::byteLevelStep(bool add_prefix_space, bool use_regex) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kByteLevel;
  step.add_prefix_space = add_prefix_space;
  if (use_regex) {
    TURBINE_ASSIGN_OR_RETURN(step.regex, Regex::compile(pretok_regex::kGpt2));
  }
  return step;
}

// tokenizers' Digits: Rust's char::is_numeric is exactly the categories Nd, Nl, No = \p{N}.
Result<PreTokenizerStep> PreTokenizer::digitsStep(bool individual_digits) {
  return splitStep("\\p{N}",
                   individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
}

Result<PreTokenizerStep> PreTokenizer::punctuationStep(SplitBehavior behavior) {
  return splitStep(pretok_regex::kPunctuation, behavior);
}

bool PreTokenizer::hasByteLevel() const {
  for (const auto& s : steps_) {
    if (s.kind == PreTokenizerStep::Kind::kByteLevel) return true;
  }
  return false;
}

namespace {

struct Span {
  size_t b, e;
  bool match;
};

// Splits `piece` by `re` into pieces per `behavior`, appending them to `out`.
void splitPiece(const std::string& piece, const PreTokenizerStep& step,
                std::vector<std::string>* out) {
  std::vector<Span> spans;
  size_t last = 0;
  step.regex->forEachMatch(piece, [&](size_t b, size_t e) {
    if (b > last) spans.push_back({last, b, false});
    spans.push_back({b, e, true});
    last = e;
  });
  if (last < piece.size()) spans.push_back({last, piece.size(), false});
  if (step.invert) {
    for (auto& s : spans) s.match = !s.match;
  }
  std::string pending;  // kMergedWithNext: matches waiting for the next piece
  bool prev_match = false;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    std::string text = piece.substr(s.b, s.e - s.b);
    switch (step.behavior) {
      case SplitBehavior::kIsolated:
        out->push_back(std::move(text));
        break;
      case SplitBehavior::kRemoved:
        if (!s.match) out->push_back(std::move(text));
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (s.match && i > 0 && !out->empty() && !spans[i - 1].match) {
          out->back() += text;
        } else {
          out->push_back(std::move(text));
        }
        break;
      case SplitBehavior::kMergedWithNext:
        if (s.match) {
          pending += text;
        } else {
          out->push_back(pending + text);
          pending.clear();
        }
        break;
      case SplitBehavior::kContiguous:
        if (s.match && prev_match && !out->empty()) {
          out->back() += text;
        } else {
          out->push_back(std::move(text));
        }
        break;
    }
    prev_match = s.match;
  }
  if (!pending.empty()) out->push_back(std::move(pending));
}

void metaspacePiece(const std::string& piece, const PreTokenizerStep& step, bool first,
                    std::vector<std::string>* out) {
  std::string text;
  text.reserve(piece.size() + 3);
  for (char c : piece) {
    if (c == ' ') {
      text += step.replacement;
    } else {
      text.push_back(c);
    }
  }
  const bool prepend = step.prepend == PreTokenizerStep::Prepend::kAlways ||
                       (step.prepend == PreTokenizerStep::Prepend::kFirst && first);
  if (prepend && !text.empty() && text.rfind(step.replacement, 0) != 0) {
    text = step.replacement + text;
  }
  if (!step.split) {
    out->push_back(std::move(text));
    return;
  }
  // Split before every replacement character (MergedWithNext).
  size_t start = 0;
  for (size_t pos = text.find(step.replacement, 1); pos != std::string::npos;
       pos = text.find(step.replacement, pos + 1)) {
    out->push_back(text.substr(start, pos - start));
    start = pos;
  }
  if (start < text.size()) out->push_back(text.substr(start));
}

}  // namespace

std::vector<std::string> PreTokenizer::split(std::string_view text, bool first_segment) const {
  std::vector<std::string> pieces{std::string(text)};
  std::vector<std::string> next;
  for (const PreTokenizerStep& step : steps_) {
    next.clear();
    next.reserve(pieces.size() * 2);
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string& piece = pieces[i];
      if (piece.empty()) continue;
      switch (step.kind) {
        case PreTokenizerStep::Kind::kSplit:
          splitPiece(piece, step, &next);
          break;
        case PreTokenizerStep::Kind::kByteLevel: {
          if (step.add_prefix_space && piece[0] != ' ')
            piece.insert(0, " ");  // every piece, as tokenizers
          if (step.regex) {
            const size_t from = next.size();
            PreTokenizerStep iso = step;
            iso.behavior = SplitBehavior::kIsolated;
            splitPiece(piece, iso, &next);
            for (size_t k = from; k < next.size(); ++k) next[k] = unicode::toByteLevel(next[k]);
          } else {
            next.push_back(unicode::toByteLevel(piece));
          }
          break;
        }
        case PreTokenizerStep::Kind::kMetaspace:
          metaspacePiece(piece, step, first_segment && i == 0, &next);
          break;
      }
    }
    pieces.swap(next);
  }
  std::erase_if(pieces, [](const std::string& p) { return p.empty(); });
  return pieces;
}

// ---------------------------------------------------------------- GGUF presets

namespace {
bool oneOf(std::string_view name, std::initializer_list<std::string_view> names) {
  for (auto n : names) {
    if (n == name) return true;
  }
  return false;
}
}  // namespace

Result<PreTokenizer> PreTokenizer::forGgufPre(std::string_view name, bool* ignore_merges,
                                              bool* nfc) {
  *ignore_merges = false;
  *nfc = false;
  std::vector<PreTokenizerStep> steps;
  auto add = [&](Result<PreTokenizerStep> r) -> Status {
    if (!r.isOk()) return r.status();
    steps.push_back(std::move(r).value());
    return Status::ok();
  };
  const auto iso = SplitBehavior::kIsolated;
  if (oneOf(name, {"", "default", "gpt-2", "phi-2", "mpt", "olmo", "roberta-bpe", "jina-es",
                   "jina-de", "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat"})) {
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, true)));
  } else if (oneOf(name, {"llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx"})) {
    *ignore_merges = oneOf(name, {"llama3", "llama-v3", "llama-bpe", "falcon3"});
    TURBINE_RETURN_IF_ERROR(add(splitStep(pretok_regex::kLlama3, iso)));
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, false)));
  } else if (oneOf(name, {"qwen2", "deepseek-r1-qwen"})) {
    *nfc = true;
    TURBINE_RETURN_IF_ERROR(add(splitStep(pretok_regex::kQwen2, iso)));
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, false)));
  } else if (name == "deepseek-llm") {
    TURBINE_RETURN_IF_ERROR(add(splitStep("[\\r\\n]", iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep(pretok_regex::kDeepSeekLlmLetters, iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep(pretok_regex::kDeepSeekLlmPunct, iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep("\\s+$", iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep(pretok_regex::kCjk, iso)));
    TURBINE_RETURN_IF_ERROR(add(digitsStep(true)));
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, false)));
  } else if (name == "deepseek-coder") {
    TURBINE_RETURN_IF_ERROR(add(splitStep("[\\r\\n]", iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep("\\s?\\p{L}+", iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep("\\s?\\p{P}+", iso)));
    TURBINE_RETURN_IF_ERROR(add(splitStep(pretok_regex::kCjk, iso)));
    TURBINE_RETURN_IF_ERROR(add(digitsStep(true)));
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, false)));
  } else if (name == "falcon") {
    TURBINE_RETURN_IF_ERROR(add(punctuationStep(SplitBehavior::kContiguous)));
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, true)));
    TURBINE_RETURN_IF_ERROR(add(digitsStep(false)));
    TURBINE_RETURN_IF_ERROR(add(splitStep("[0-9][0-9][0-9]", iso)));
  } else if (oneOf(name, {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"})) {
    TURBINE_RETURN_IF_ERROR(add(digitsStep(true)));
    TURBINE_RETURN_IF_ERROR(add(byteLevelStep(false, true)));
  } else {
    return unimplemented("tokenizer.ggml.pre '" + std::string(name) +
                         "': unknown pre-tokenizer (supported: gpt-2, llama-bpe, qwen2, "
                         "deepseek-llm, deepseek-coder, falcon, starcoder and their aliases)");
  }
  return PreTokenizer(std::move(steps));
}

}  // namespace turbine::model
