#include "structured/regex.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

namespace turbine::structured {
namespace {

constexpr uint32_t kMaxCodePoint = 0x10ffff;
constexpr int64_t kMaxRepeat = 4096;

// A set of code points as sorted, disjoint, non-adjacent closed ranges.
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges normalized(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& x : r) {
    if (!out.empty() && x.first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, x.second);
    } else {
      out.push_back(x);
    }
  }
  return out;
}

Ranges complement(const Ranges& r) {
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : r) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return out;
}

Ranges subtract(const Ranges& a, const Ranges& b) {
  Ranges both = b;
  both.insert(both.end(), {{0xd800, 0xdfff}});
  const Ranges keep = complement(normalized(both));
  Ranges out;
  for (const auto& [lo, hi] : a) {
    for (const auto& [klo, khi] : keep) {
      const uint32_t l = std::max(lo, klo), h = std::min(hi, khi);
      if (l <= h) out.push_back({l, h});
    }
  }
  return normalized(out);
}

int utf8Length(uint32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

void encodeUtf8(uint32_t c, uint8_t* out) {
  const int n = utf8Length(c);
  if (n == 1) {
    out[0] = static_cast<uint8_t>(c);
    return;
  }
  for (int i = n - 1; i > 0; --i) {
    out[i] = static_cast<uint8_t>(0x80 | (c & 0x3f));
    c >>= 6;
  }
  out[0] = static_cast<uint8_t>((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | c);
}


// Splits [lo, hi] (no surrogates) into ranges whose UTF-8 encodings are byte-wise ranges, each
// a list of (first, last) byte pairs.
void utf8Sequences(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>* out) {
  if (lo > hi) return;
  for (uint32_t limit : {0x7fu, 0x7ffu, 0xffffu}) {
    if (lo <= limit && hi > limit) {
      utf8Sequences(lo, limit, out);
      utf8Sequences(limit + 1, hi, out);
      return;
    }
  }
  const int n = utf8Length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8Sequences(lo, lo | m, out);
        utf8Sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8Sequences(lo, (hi & ~m) - 1, out);
        utf8Sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  encodeUtf8(lo, a);
  encodeUtf8(hi, b);
  std::vector<std::pair<uint8_t, uint8_t>> seq;
  for (int i = 0; i < n; ++i) seq.push_back({a[i], b[i]});
  out->push_back(std::move(seq));
}

}  // namespace

std::string utf8(uint32_t c) {
  uint8_t b[4];
  encodeUtf8(c, b);
  return std::string(reinterpret_cast<char*>(b), static_cast<size_t>(utf8Length(c)));
}

uint32_t readUtf8(std::string_view s, size_t* i) {
  const auto b0 = static_cast<uint8_t>(s[(*i)++]);
  if (b0 < 0x80) return b0;
  const int n = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : 2;
  uint32_t cp = b0 & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
  for (int k = 1; k < n && *i < s.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[(*i)++]) & 0x3f);
  return std::min(cp, kMaxCodePoint);
}

Result<uint32_t> readEscape(std::string_view s, size_t* i, bool long_u) {
  if (*i >= s.size()) return invalidArgument("the text ends inside an escape");
  const char c = s[(*i)++];
  auto hex = [&](int digits) -> Result<uint32_t> {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      if (*i >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[*i]))) {
        return invalidArgument(std::string("'\\") + c + "' needs " + std::to_string(digits) + " hex digits");
      }
      const char h = s[(*i)++];
      v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    if (v > kMaxCodePoint) return invalidArgument("code point above U+10FFFF");
    return v;
  };
  switch (c) {
    case 'n': return uint32_t{'\n'};
    case 'r': return uint32_t{'\r'};
    case 't': return uint32_t{'\t'};
    case 'f': return uint32_t{'\f'};
    case 'v': return uint32_t{'\v'};
    case '0': return uint32_t{0};
    case 'x': return hex(2);
    case 'u': return hex(4);
    case 'U':
      if (long_u) return hex(8);
      break;
    default: break;
  }
  if (std::isalnum(static_cast<unsigned char>(c))) {
    return invalidArgument(std::string("escape '\\") + c + "' is not supported");
  }
  --*i;
  return readUtf8(s, i);  // escaped punctuation (or any non-ASCII character) stands for itself
}

Result<Symbol> addCodePointClass(GrammarBuilder* b, std::vector<std::pair<uint32_t, uint32_t>> ranges) {
  for (auto& [lo, hi] : ranges) hi = std::min(hi, kMaxCodePoint);
  const Ranges r = subtract(normalized(std::move(ranges)), {});
  if (r.empty()) return invalidArgument("a character class that matches nothing");
  ByteSet ascii;
  std::vector<std::vector<std::pair<uint8_t, uint8_t>>> seqs;
  for (const auto& [lo, hi] : r) {
    if (lo < 0x80) ascii.addRange(static_cast<uint8_t>(lo), static_cast<uint8_t>(std::min(hi, 0x7fu)));
    if (hi >= 0x80) utf8Sequences(std::max(lo, 0x80u), hi, &seqs);
  }
  if (seqs.empty()) return b->bytes(ascii);
  const int32_t rule = b->addRule("class");
  if (!ascii.empty()) b->addAlternative(rule, {b->bytes(ascii)});
  for (const auto& seq : seqs) {
    std::vector<Symbol> alt;
    for (const auto& [a, z] : seq) alt.push_back(b->bytes(ByteSet::range(a, z)));
    b->addAlternative(rule, std::move(alt));
  }
  return GrammarBuilder::rule(rule);
}

namespace {

class RegexCompiler {
 public:
  RegexCompiler(GrammarBuilder* b, std::string_view p, const RegexOptions& o) : b_(b), p_(p), o_(o) {}

  Result<int32_t> compile() {
    bool anchored_start = false, anchored_end = false;
    if (!p_.empty() && p_.front() == '^') p_.remove_prefix(1), anchored_start = true;
    if (!p_.empty() && p_.back() == '$' && (p_.size() < 2 || p_[p_.size() - 2] != '\\'))
      p_.remove_suffix(1), anchored_end = true;
    TURBINE_ASSIGN_OR_RETURN(const int32_t body, alternation(0));
    if (i_ < p_.size()) return error("unbalanced ')'");
    if (!o_.search || (anchored_start && anchored_end)) return body;
    TURBINE_ASSIGN_OR_RETURN(const Symbol any, charSet(complement({{'\n', '\n'}})));
    const int32_t star = b_->addRule("regex_any");
    b_->addAlternative(star, {});
    b_->addAlternative(star, {any, GrammarBuilder::rule(star)});
    std::vector<Symbol> seq;
    if (!anchored_start) seq.push_back(GrammarBuilder::rule(star));
    seq.push_back(GrammarBuilder::rule(body));
    if (!anchored_end) seq.push_back(GrammarBuilder::rule(star));
    const int32_t r = b_->addRule("regex_search");
    b_->addAlternative(r, std::move(seq));
    return r;
  }

 private:
  Status error(const std::string& what) const {
    return invalidArgument("regex at offset " + std::to_string(i_) + ": " + what);
  }
  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  Result<int32_t> alternation(int depth) {
    if (depth > 100) return error("nested too deeply");
    const int32_t r = b_->addRule("regex_alt");
    for (;;) {
      TURBINE_ASSIGN_OR_RETURN(std::vector<Symbol> seq, sequence(depth));
      b_->addAlternative(r, std::move(seq));
      if (more() && peek() == '|') {
        ++i_;
        continue;
      }
      return r;
    }
  }

  Result<std::vector<Symbol>> sequence(int depth) {
    std::vector<Symbol> seq;
    while (more() && peek() != '|' && peek() != ')') {
      TURBINE_ASSIGN_OR_RETURN(Symbol a, atom(depth));
      TURBINE_ASSIGN_OR_RETURN(Symbol q, quantified(a));
      seq.push_back(q);
    }
    return seq;
  }

  Result<Symbol> atom(int depth) {
    const char c = p_[i_++];
    switch (c) {
      case '(': {
        if (more() && peek() == '?') {
          ++i_;
          if (more() && peek() == ':') {
            ++i_;
          } else if (more() && (peek() == 'P' || peek() == '<') &&
                     p_.substr(i_).find('>') != std::string_view::npos &&
                     !(peek() == '<' && i_ + 1 < p_.size() && (p_[i_ + 1] == '=' || p_[i_ + 1] == '!'))) {
            i_ = p_.find('>', i_) + 1;  // a named group
          } else {
            return error("lookaround and other (? groups are not supported");
          }
        }
        TURBINE_ASSIGN_OR_RETURN(const int32_t r, alternation(depth + 1));
        if (!more() || peek() != ')') return error("missing ')'");
        ++i_;
        return GrammarBuilder::rule(r);
      }
      case '[': return classAtom();
      case '.': return charSet(complement({{'\n', '\n'}}));
      case '\\': return escapeAtom();
      case '^':
      case '$': return error("anchors are supported only at the ends of the pattern");
      case '*':
      case '+':
      case '?':
      case '{': return error("nothing to repeat");
      default: {
        --i_;
        const uint32_t cp = readCodePoint();
        return literal(cp);
      }
    }
  }

  // One UTF-8 code point of the pattern itself.
  uint32_t readCodePoint() { return readUtf8(p_, &i_); }


  Result<Symbol> literal(uint32_t cp) {
    std::string text = utf8(cp);
    if (o_.json_string) {
      static const char* kShort = "btn\0fr";  // \b \t \n _ \f \r for 8..13
      if (cp == '"' || cp == '\\') {
        text = std::string("\\") + static_cast<char>(cp);
      } else if (cp < 0x20) {
        if (cp >= 8 && cp <= 13 && cp != 11) {
          text = std::string("\\") + kShort[cp - 8];
        } else {
          static const char* kHex = "0123456789abcdef";
          text = std::string("\\u00") + kHex[cp >> 4] + kHex[cp & 15];
        }
      }
    }
    if (text.size() == 1) return b_->byte(static_cast<uint8_t>(text[0]));
    std::vector<Symbol> seq;
    b_->appendLiteral(text, &seq);
    const int32_t r = b_->addRule("regex_literal");
    b_->addAlternative(r, std::move(seq));
    return GrammarBuilder::rule(r);
  }

  // Escapes that stand for a class; false when `c` is not one.
  static bool classEscape(char c, Ranges* out) {
    Ranges r;
    switch (c) {
      case 'd': case 'D': r = {{'0', '9'}}; break;
      case 'w': case 'W': r = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; break;
      case 's': case 'S': r = {{'\t', '\r'}, {' ', ' '}}; break;
      default: return false;
    }
    *out = (c >= 'A' && c <= 'Z') ? complement(normalized(r)) : r;
    return true;
  }

  // The code point of a single-character escape (after the backslash); -1 with an error set.
  Result<uint32_t> escapedCodePoint() {
    auto cp = readEscape(p_, &i_, /*long_u=*/false);
    if (!cp.isOk()) return error(cp.status().message());
    return cp;
  }

  Result<Symbol> escapeAtom() {
    if (!more()) return error("pattern ends with '\\'");
    Ranges r;
    if (classEscape(peek(), &r)) {
      ++i_;
      return charSet(r);
    }
    TURBINE_ASSIGN_OR_RETURN(const uint32_t cp, escapedCodePoint());
    return literal(cp);
  }

  Result<Symbol> classAtom() {
    bool negated = false;
    if (more() && peek() == '^') ++i_, negated = true;
    Ranges r;
    bool first = true;
    while (more() && (peek() != ']' || first)) {
      first = false;
      uint32_t lo;
      if (peek() == '\\') {
        ++i_;
        Ranges cls;
        if (more() && classEscape(peek(), &cls)) {
          ++i_;
          r.insert(r.end(), cls.begin(), cls.end());
          continue;
        }
        TURBINE_ASSIGN_OR_RETURN(lo, escapedCodePoint());
      } else {
        lo = readCodePoint();
      }
      uint32_t hi = lo;
      if (i_ + 1 < p_.size() && peek() == '-' && p_[i_ + 1] != ']') {
        ++i_;
        if (peek() == '\\') {
          ++i_;
          TURBINE_ASSIGN_OR_RETURN(hi, escapedCodePoint());
        } else {
          hi = readCodePoint();
        }
        if (hi < lo) return error("class range out of order");
      }
      r.push_back({lo, hi});
    }
    if (!more()) return error("missing ']'");
    ++i_;
    r = normalized(r);
    return charSet(negated ? complement(r) : r);
  }

  // A symbol matching one code point of `r` (in JSON-string mode, never one JSON escapes).
  Result<Symbol> charSet(Ranges r) {
    if (o_.json_string) r = subtract(r, {{0, 0x1f}, {'"', '"'}, {'\\', '\\'}});
    auto s = addCodePointClass(b_, std::move(r));
    if (!s.isOk()) return error("a character class that matches nothing");
    return s;
  }

  Result<Symbol> quantified(Symbol a) {
    if (!more()) return a;
    int64_t lo = 0, hi = -1;
    const char c = peek();
    if (c == '*') {
      ++i_;
    } else if (c == '+') {
      ++i_, lo = 1;
    } else if (c == '?') {
      ++i_, hi = 1;
    } else if (c == '{' && readBraces(&lo, &hi)) {
    } else {
      return a;
    }
    if (more() && (peek() == '?' || peek() == '+')) ++i_;  // lazy / possessive: same strings
    if (more() && (peek() == '*' || peek() == '+' || peek() == '?')) return error("nothing to repeat");
    if (std::max(lo, hi) > kMaxRepeat) return error("repeat counts above 4096 are not supported");
    // opt: up to (hi - lo) more copies, or any number when hi < 0.
    const int32_t tail = b_->addRule("regex_repeat");
    if (hi < 0) {
      b_->addAlternative(tail, {});
      b_->addAlternative(tail, {a, GrammarBuilder::rule(tail)});
    } else {
      int32_t next = tail;
      b_->addAlternative(tail, {});
      for (int64_t k = lo; k < hi; ++k) {
        const int32_t r = b_->addRule("regex_repeat");
        b_->addAlternative(r, {});
        b_->addAlternative(next, {a, GrammarBuilder::rule(r)});
        next = r;
      }
    }
    std::vector<Symbol> seq(static_cast<size_t>(lo), a);
    seq.push_back(GrammarBuilder::rule(tail));
    const int32_t r = b_->addRule("regex_quantified");
    b_->addAlternative(r, std::move(seq));
    return GrammarBuilder::rule(r);
  }

  // {n}, {n,}, {n,m}; false (nothing consumed) when the brace is a literal.
  bool readBraces(int64_t* lo, int64_t* hi) {
    size_t j = i_ + 1;
    auto num = [&](int64_t* v) {
      const size_t start = j;
      *v = 0;
      while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j])) && *v <= kMaxRepeat * 10)
        *v = *v * 10 + (p_[j++] - '0');
      return j > start;
    };
    if (!num(lo)) return false;
    *hi = *lo;
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!num(hi)) *hi = -1;
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    if (*hi >= 0 && *hi < *lo) return false;
    i_ = j + 1;
    return true;
  }

  GrammarBuilder* b_;
  std::string_view p_;
  RegexOptions o_;
  size_t i_ = 0;
};

}  // namespace

Result<int32_t> addRegexRule(GrammarBuilder* b, std::string_view pattern, const RegexOptions& options) {
  RegexCompiler c(b, pattern, options);
  return c.compile();
}

Result<std::shared_ptr<const Grammar>> compileRegex(std::string_view pattern) {
  GrammarBuilder b;
  TURBINE_ASSIGN_OR_RETURN(const int32_t r, addRegexRule(&b, pattern, RegexOptions{}));
  TURBINE_ASSIGN_OR_RETURN(Grammar g, std::move(b).build(r));
  return std::make_shared<const Grammar>(std::move(g));
}

}  // namespace turbine::structured
