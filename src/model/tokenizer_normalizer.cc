// Normalizer steps; Unicode forms and lowercasing through ICU's UTF-8 APIs.
#include "model/tokenizer_normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/casemap.h>
#include <unicode/normalizer2.h>

namespace turbine::model {
namespace {

const icu::Normalizer2* icuNormalizer(NormalizerStep::Kind kind) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (kind) {
    case NormalizerStep::Kind::kNfc:
      n = icu::Normalizer2::getNFCInstance(err);
      break;
    case NormalizerStep::Kind::kNfkc:
      n = icu::Normalizer2::getNFKCInstance(err);
      break;
    case NormalizerStep::Kind::kNfd:
      n = icu::Normalizer2::getNFDInstance(err);
      break;
    case NormalizerStep::Kind::kNfkd:
      n = icu::Normalizer2::getNFKDInstance(err);
      break;
    default:
      break;
  }
  return U_SUCCESS(err) ? n : nullptr;
}

bool isAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::string normalizeForm(std::string_view text, NormalizerStep::Kind kind) {
  if (isAscii(text)) return std::string(text);  // every form is the identity on ASCII
  const icu::Normalizer2* n = icuNormalizer(kind);
  if (n == nullptr) return std::string(text);  // ICU data missing: leave the text as is
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode err = U_ZERO_ERROR;
  n->normalizeUTF8(0, icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), sink,
                   nullptr, err);
  return U_SUCCESS(err) ? out : std::string(text);
}

std::string lowercase(std::string_view text) {
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode err = U_ZERO_ERROR;
  icu::CaseMap::utf8ToLower("", 0, icu::StringPiece(text.data(), static_cast<int32_t>(text.size())),
                            sink, nullptr, err);
  return U_SUCCESS(err) ? out : std::string(text);
}

std::string replaceAll(std::string_view text, const NormalizerStep& step) {
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  step.regex->forEachMatch(text, [&](size_t b, size_t e) {
    out.append(text.substr(last, b - last));
    out.append(step.text);
    last = e;
  });
  out.append(text.substr(last));
  return out;
}

bool isSpaceAscii(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

NormalizerStep Normalizer::unicodeForm(NormalizerStep::Kind kind) {
  NormalizerStep s;
  s.kind = kind;
  return s;
}

NormalizerStep Normalizer::prepend(std::string prefix) {
  NormalizerStep s;
  s.kind = NormalizerStep::Kind::kPrepend;
  s.text = std::move(prefix);
  return s;
}

Result<NormalizerStep> Normalizer::replace(std::string_view pattern, std::string content,
                                           bool literal) {
  NormalizerStep s;
  s.kind = NormalizerStep::Kind::kReplace;
  TURBINE_ASSIGN_OR_RETURN(s.regex, Regex::compile(pattern, literal));
  s.text = std::move(content);
  return s;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string cur(text);
  for (const NormalizerStep& step : steps_) {
    if (cur.empty()) break;
    switch (step.kind) {
      case NormalizerStep::Kind::kNfc:
      case NormalizerStep::Kind::kNfkc:
      case NormalizerStep::Kind::kNfd:
      case NormalizerStep::Kind::kNfkd:
        cur = normalizeForm(cur, step.kind);
        break;
      case NormalizerStep::Kind::kPrepend:
        cur.insert(0, step.text);
        break;
      case NormalizerStep::Kind::kReplace:
        cur = replaceAll(cur, step);
        break;
      case NormalizerStep::Kind::kLowercase:
        cur = lowercase(cur);
        break;
      case NormalizerStep::Kind::kStrip: {  // ASCII whitespace only (a documented limitation)
        size_t b = 0, e = cur.size();
        if (step.strip_left) {
          while (b < e && isSpaceAscii(cur[b])) ++b;
        }
        if (step.strip_right) {
          while (e > b && isSpaceAscii(cur[e - 1])) --e;
        }
        cur = cur.substr(b, e - b);
        break;
      }
    }
  }
  return cur;
}

}  // namespace turbine::model
