#include "model/jinja/lexer.h"

#include <cctype>
#include <cstdio>
#include <string_view>

#include "model/jinja/value.h"

namespace turbine::model::jinja {
namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Python str.rstrip() on UTF-8 text.
std::string pyRstrip(const std::string& s) {
  std::u32string cps = utf8Decode(s);
  size_t end = cps.size();
  while (end > 0 && isPySpace(cps[end - 1])) --end;
  return utf8Encode(std::u32string_view(cps).substr(0, end));
}

bool allPySpace(std::string_view s) {
  if (s.empty()) return false;  // `\s+` needs at least one character
  for (char32_t c : utf8Decode(s)) {
    if (!isPySpace(c)) return false;
  }
  return true;
}

std::string normalizeSource(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int countNewlines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// Decodes a Python string literal body the way Jinja2 does (unicode-escape).
std::string unescape(std::string_view body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    auto hexRun = [&](size_t len) -> bool {
      if (i + 1 + len > body.size()) return false;
      char32_t v = 0;
      for (size_t k = 0; k < len; ++k) {
        char h = body[i + 1 + k];
        if (!std::isxdigit(static_cast<unsigned char>(h))) return false;
        v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                          : (std::tolower(h) - 'a' + 10));
      }
      appendUtf8(out, v);
      i += len;
      return true;
    };
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // line continuation
      case 'x': if (!hexRun(2)) throwRuntime("truncated \\xXX escape"); break;
      case 'u': if (!hexRun(4)) throwRuntime("truncated \\uXXXX escape"); break;
      case 'U': if (!hexRun(8)) throwRuntime("truncated \\UXXXXXXXX escape"); break;
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
            v = v * 8 + (body[++i] - '0');
          }
          appendUtf8(out, static_cast<char32_t>(v));
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(normalizeSource(src)) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) {
      size_t q = findTagStart(pos_);
      if (q == std::string::npos) {
        emit(TokenType::kData, s_.substr(pos_));
        break;
      }
      rootTag(q);
    }
    tokens_.push_back({TokenType::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw JinjaError{JinjaError::Type::kSyntax, what, line_};
  }

  size_t findTagStart(size_t from) const {
    for (size_t q = s_.find('{', from); q != std::string::npos; q = s_.find('{', q + 1)) {
      if (q + 1 < s_.size() && (s_[q + 1] == '{' || s_[q + 1] == '%' || s_[q + 1] == '#')) return q;
    }
    return std::string::npos;
  }

  void emit(TokenType type, std::string text) {
    int lines = countNewlines(text);
    if (type != TokenType::kData || !text.empty()) tokens_.push_back({type, std::move(text), line_});
    line_ += lines;
  }

  // Applies `-` / lstrip_blocks to the data before a tag and emits it.
  void emitLeading(std::string text, char sign, bool is_variable) {
    int stripped_lines = 0;
    if (sign == '-') {
      std::string kept = pyRstrip(text);
      stripped_lines = countNewlines(std::string_view(text).substr(kept.size()));
      text = std::move(kept);
    } else if (sign != '+' && !is_variable) {
      size_t l_pos = text.rfind('\n');
      l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
      if ((l_pos > 0 || line_starting_) && allPySpace(std::string_view(text).substr(l_pos))) text.resize(l_pos);
    }
    emit(TokenType::kData, std::move(text));
    line_ += stripped_lines;
  }

  size_t skipSpaces(size_t p) const {
    while (p < s_.size() && isSpace(s_[p])) ++p;
    return p;
  }

  // Matches `{%(sign)\s*<word>\s*(-%}\s*|%})` at q for raw; returns end or npos.
  size_t matchRawBegin(size_t q, char sign) const {
    size_t p = skipSpaces(q + 2 + (sign ? 1 : 0));
    if (s_.compare(p, 3, "raw") != 0) return std::string::npos;
    p = skipSpaces(p + 3);
    if (s_.compare(p, 3, "-%}") == 0) return skipSpaces(p + 3);
    if (s_.compare(p, 2, "%}") == 0) return p + 2;
    return std::string::npos;
  }

  void rootTag(size_t q) {
    char kind = s_[q + 1];
    char sign = (q + 2 < s_.size() && (s_[q + 2] == '-' || s_[q + 2] == '+')) ? s_[q + 2] : 0;
    std::string text = s_.substr(pos_, q - pos_);
    size_t raw_end = kind == '%' ? matchRawBegin(q, sign) : std::string::npos;
    emitLeading(std::move(text), sign, kind == '{');
    if (raw_end != std::string::npos) {
      line_ += countNewlines(std::string_view(s_).substr(q, raw_end - q));
      line_starting_ = s_[raw_end - 1] == '\n';
      pos_ = raw_end;
      rawBody();
      return;
    }
    pos_ = q + 2 + (sign ? 1 : 0);
    line_starting_ = false;
    if (kind == '#') {
      comment();
    } else {
      tag(kind == '{');
    }
  }

  // Consumes a block end's trailing part after the `%}` / `#}` at p with the given sign.
  size_t afterEnd(size_t p, char sign) const {
    if (sign == '-') return skipSpaces(p);
    if (sign != '+' && p < s_.size() && s_[p] == '\n') return p + 1;  // trim_blocks
    return p;
  }

  void comment() {
    size_t q = s_.find("#}", pos_);
    if (q == std::string::npos) fail("Missing end of comment tag");
    char sign = (q > pos_ && (s_[q - 1] == '-' || s_[q - 1] == '+')) ? s_[q - 1] : 0;
    size_t end = afterEnd(q + 2, sign);
    line_ += countNewlines(std::string_view(s_).substr(pos_, end - pos_));
    line_starting_ = s_[end - 1] == '\n';
    pos_ = end;
  }

  void rawBody() {
    for (size_t q = s_.find("{%", pos_); q != std::string::npos; q = s_.find("{%", q + 1)) {
      char sign = (q + 2 < s_.size() && (s_[q + 2] == '-' || s_[q + 2] == '+')) ? s_[q + 2] : 0;
      size_t p = skipSpaces(q + 2 + (sign ? 1 : 0));
      if (s_.compare(p, 6, "endraw") != 0) continue;
      p = skipSpaces(p + 6);
      char end_sign = (s_[p] == '-' || s_[p] == '+') ? s_[p] : 0;
      if (s_.compare(p + (end_sign ? 1 : 0), 2, "%}") != 0) continue;
      size_t end = afterEnd(p + (end_sign ? 1 : 0) + 2, end_sign);
      emitLeading(s_.substr(pos_, q - pos_), sign, false);
      line_ += countNewlines(std::string_view(s_).substr(q, end - q));
      line_starting_ = s_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail("Missing end of raw directive");
  }

  // Tries the end of a `{{ }}` / `{% %}` tag at pos_; returns true when it ended.
  bool tryTagEnd(bool is_var) {
    const char* close = is_var ? "}}" : "%}";
    size_t p = pos_;
    char sign = 0;
    if (s_[p] == '-' || (!is_var && s_[p] == '+')) sign = s_[p++];
    if (s_.compare(p, 2, close) != 0) return false;
    size_t end = is_var ? (sign == '-' ? skipSpaces(p + 2) : p + 2) : afterEnd(p + 2, sign);
    tokens_.push_back({is_var ? TokenType::kVarEnd : TokenType::kBlockEnd, "", line_});
    line_ += countNewlines(std::string_view(s_).substr(pos_, end - pos_));
    line_starting_ = s_[end - 1] == '\n';
    pos_ = end;
    return true;
  }

  void tag(bool is_var) {
    tokens_.push_back({is_var ? TokenType::kVarBegin : TokenType::kBlockBegin, "", line_});
    std::string balance;
    while (true) {
      if (pos_ >= s_.size()) fail(is_var ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      if (balance.empty() && tryTagEnd(is_var)) return;
      char c = s_[pos_];
      if (isSpace(c)) {
        size_t end = skipSpaces(pos_);
        line_ += countNewlines(std::string_view(s_).substr(pos_, end - pos_));
        line_starting_ = s_[end - 1] == '\n';
        pos_ = end;
        continue;
      }
      line_starting_ = false;
      if (std::isdigit(static_cast<unsigned char>(c))) {
        number();
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t end = pos_;
        while (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) ++end;
        emit(TokenType::kName, s_.substr(pos_, end - pos_));
        pos_ = end;
      } else if (c == '\'' || c == '"') {
        stringLiteral(c);
      } else {
        op(balance);
      }
    }
  }

  size_t digits(size_t p) const {
    size_t start = p;
    while (p < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p])) ||
                             (s_[p] == '_' && p > start && p + 1 < s_.size() &&
                              std::isdigit(static_cast<unsigned char>(s_[p + 1]))))) {
      ++p;
    }
    return p;
  }

  void number() {
    size_t p = digits(pos_);
    bool is_float = false;
    if (p + 1 < s_.size() && s_[p] == '.' && std::isdigit(static_cast<unsigned char>(s_[p + 1]))) {
      p = digits(p + 1);
      is_float = true;
    }
    if (p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
      size_t e = p + 1;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      if (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) {
        p = digits(e);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = pos_; i < p; ++i) {
      if (s_[i] != '_') text += s_[i];
    }
    emit(is_float ? TokenType::kFloat : TokenType::kInt, text);
    pos_ = p;
  }

  void stringLiteral(char quote) {
    size_t p = pos_ + 1;
    while (p < s_.size() && s_[p] != quote) p += s_[p] == '\\' ? 2 : 1;
    if (p >= s_.size()) fail(std::string("unexpected char '") + quote + "'");
    std::string body = s_.substr(pos_ + 1, p - pos_ - 1);
    int lines = countNewlines(body);
    try {
      tokens_.push_back({TokenType::kString, unescape(body), line_});
    } catch (const JinjaError& e) {
      fail(e.message);
    }
    line_ += lines;
    pos_ = p + 1;
  }

  void op(std::string& balance) {
    static const char* kTwo[] = {"**", "//", "==", "!=", ">=", "<="};
    for (const char* t : kTwo) {
      if (s_.compare(pos_, 2, t) == 0) {
        emit(TokenType::kOp, t);
        pos_ += 2;
        return;
      }
    }
    char c = s_[pos_];
    if (std::string_view("+-/*%~[](){}=.:|,><;").find(c) == std::string_view::npos) {
      fail(std::string("unexpected char '") + c + "'");
    }
    if (c == '{' || c == '(' || c == '[') {
      balance += c == '{' ? '}' : c == '(' ? ')' : ']';
    } else if (c == '}' || c == ')' || c == ']') {
      if (balance.empty()) fail(std::string("unexpected '") + c + "'");
      if (balance.back() != c) fail(std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
      balance.pop_back();
    }
    emit(TokenType::kOp, std::string(1, c));
    ++pos_;
  }

  std::string s_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> tokenize(const std::string& source) {
  try {
    return Lexer(source).run();
  } catch (const JinjaError& e) {
    return invalidArgument("line " + std::to_string(e.line) + ": " + e.message);
  }
}

}  // namespace turbine::model::jinja
