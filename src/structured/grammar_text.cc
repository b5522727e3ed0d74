#include "structured/grammar_text.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "structured/regex.h"

namespace turbine::structured {
namespace {

constexpr int kMaxDepth = 200;           // nested groups
constexpr int64_t kMaxRepeat = 4096;     // {n,m} bounds
constexpr int64_t kMaxSymbols = 1 << 21; // symbols the repetitions may add in all
constexpr uint32_t kMaxCodePoint = 0x10ffff;

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

// The terminals of Lark's common.lark that grammars import, written here in the Lark syntax this
// file reads (definitions of the same languages, not a copy of that file).
constexpr std::string_view kLarkCommon = R"lark(
DIGIT: "0".."9"
HEXDIGIT: "a".."f" | "A".."F" | DIGIT
INT: DIGIT+
SIGNED_INT: ["+" | "-"] INT
DECIMAL: INT "." INT? | "." INT
_EXP: ("e" | "E") SIGNED_INT
FLOAT: INT _EXP | DECIMAL _EXP?
SIGNED_FLOAT: ["+" | "-"] FLOAT
NUMBER: FLOAT | INT
SIGNED_NUMBER: ["+" | "-"] NUMBER
ESCAPED_STRING: "\"" (/[^"\\\n]/ | "\\" /[^\n]/)* "\""
LCASE_LETTER: "a".."z"
UCASE_LETTER: "A".."Z"
LETTER: UCASE_LETTER | LCASE_LETTER
WORD: LETTER+
CNAME: ("_" | LETTER) ("_" | LETTER | DIGIT)*
WS_INLINE: (" " | "\t")+
WS: /[ \t\f\r\n]/+
CR: "\r"
LF: "\n"
NEWLINE: (CR? LF)+
SH_COMMENT: /#[^\n]*/
CPP_COMMENT: /\/\/[^\n]*/
C_COMMENT: "/*" (/[^*]/ | "*"+ /[^*\/]/)* "*"+ "/"
SQL_COMMENT: /--[^\n]*/
)lark";

// ---- tokens ---------------------------------------------------------------------------------

struct Token {
  enum class Kind { kIdent, kDefine, kString, kClass, kRegex, kNumber, kPunct, kRange, kArrow, kDirective, kEnd };
  Kind kind = Kind::kEnd;
  std::string text;   // kIdent / kDirective: the name; kString: the bytes; kRegex: the pattern
  Ranges ranges;      // kClass
  bool negated = false;      // kClass
  bool icase = false;        // kString: "..."i
  char punct = 0;            // kPunct
  int64_t number = 0;        // kNumber
  int line = 1, col = 1;
  bool line_start = false;   // the first token on its line
};

Status errorAt(int line, int col, const std::string& what) {
  return invalidArgument("grammar line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
}

class Lexer {
 public:
  Lexer(std::string_view text, GrammarSyntax syntax) : s_(text), lark_(syntax == GrammarSyntax::kLark) {}

  Result<std::vector<Token>> run() {
    std::vector<Token> out;
    int last_line = 0;
    for (;;) {
      skipSpaceAndComments();
      Token t;
      t.line = line_, t.col = col();
      t.line_start = line_ != last_line;
      if (i_ >= s_.size()) {
        out.push_back(t);
        return out;
      }
      last_line = line_;
      TURBINE_RETURN_IF_ERROR(next(&t));
      out.push_back(std::move(t));
    }
  }

 private:
  int col() const { return static_cast<int>(i_ - line_begin_) + 1; }
  Status error(const std::string& what) const { return errorAt(line_, col(), what); }
  bool at(std::string_view p) const { return s_.substr(i_, p.size()) == p; }

  void skipSpaceAndComments() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\n') {
        ++i_, ++line_, line_begin_ = i_;
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
        ++i_;
      } else if (c == '#' || (lark_ && at("//"))) {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        return;
      }
    }
  }

  static bool identStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
  bool identChar(char c) const {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (!lark_ && c == '-');
  }

  uint32_t readCodePoint() { return readUtf8(s_, &i_); }

  // After a backslash, in a string or a class.
  Result<uint32_t> escape() {
    auto cp = readEscape(s_, &i_, /*long_u=*/true);
    if (!cp.isOk()) return error(cp.status().message());
    return cp;
  }

  Status next(Token* t) {
    const char c = s_[i_];
    if (identStart(c)) {
      const size_t b = i_;
      while (i_ < s_.size() && identChar(s_[i_])) ++i_;
      t->kind = Token::Kind::kIdent;
      t->text = std::string(s_.substr(b, i_ - b));
      return Status::ok();
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      t->kind = Token::Kind::kNumber;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        t->number = std::min<int64_t>(t->number * 10 + (s_[i_++] - '0'), int64_t{1} << 40);
      }
      return Status::ok();
    }
    if (at("::=")) {
      i_ += 3;
      t->kind = Token::Kind::kDefine;
      return Status::ok();
    }
    if (lark_ && c == ':') {
      ++i_;
      t->kind = Token::Kind::kDefine;
      return Status::ok();
    }
    if (c == '"' || c == '\'') {
      ++i_;
      t->kind = Token::Kind::kString;
      for (;;) {
        if (i_ >= s_.size() || s_[i_] == '\n') return errorAt(t->line, t->col, "unterminated string");
        if (s_[i_] == c) break;
        if (s_[i_] == '\\') {
          ++i_;
          TURBINE_ASSIGN_OR_RETURN(const uint32_t cp, escape());
          t->text += utf8(cp);
        } else {
          t->text += s_[i_++];
        }
      }
      ++i_;
      if (lark_ && i_ < s_.size() && s_[i_] == 'i' && (i_ + 1 >= s_.size() || !identChar(s_[i_ + 1]))) {
        ++i_;
        t->icase = true;
      }
      return Status::ok();
    }
    if (!lark_ && c == '[') {
      ++i_;
      t->kind = Token::Kind::kClass;
      if (i_ < s_.size() && s_[i_] == '^') ++i_, t->negated = true;
      for (;;) {
        if (i_ >= s_.size()) return errorAt(t->line, t->col, "missing ']'");
        if (s_[i_] == ']') break;
        auto one = [&]() -> Result<uint32_t> {
          if (s_[i_] == '\\') {
            ++i_;
            return escape();
          }
          return readCodePoint();
        };
        if (s_[i_] == '\n') ++line_, line_begin_ = i_ + 1;
        TURBINE_ASSIGN_OR_RETURN(const uint32_t lo, one());
        uint32_t hi = lo;
        if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
          ++i_;
          TURBINE_ASSIGN_OR_RETURN(hi, one());
          if (hi < lo) return error("class range out of order");
        }
        t->ranges.push_back({lo, hi});
      }
      ++i_;
      return Status::ok();
    }
    if (lark_ && c == '/') {
      ++i_;
      t->kind = Token::Kind::kRegex;
      for (;;) {
        if (i_ >= s_.size() || s_[i_] == '\n') return errorAt(t->line, t->col, "unterminated regular expression");
        if (s_[i_] == '/') break;
        if (s_[i_] == '\\' && i_ + 1 < s_.size() && s_[i_ + 1] == '/') {
          t->text += '/';
          i_ += 2;
          continue;
        }
        if (s_[i_] == '\\' && i_ + 1 < s_.size()) t->text += s_[i_++];
        t->text += s_[i_++];
      }
      ++i_;
      if (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) {
        return error(std::string("regular expression flag '") + s_[i_] + "' is not supported");
      }
      return Status::ok();
    }
    if (lark_ && c == '%') {
      const size_t b = ++i_;
      while (i_ < s_.size() && identChar(s_[i_])) ++i_;
      t->kind = Token::Kind::kDirective;
      t->text = std::string(s_.substr(b, i_ - b));
      return Status::ok();
    }
    if (at("..")) {
      i_ += 2;
      t->kind = Token::Kind::kRange;
      return Status::ok();
    }
    if (at("->")) {
      i_ += 2;
      t->kind = Token::Kind::kArrow;
      return Status::ok();
    }
    if (std::string_view("|()*+?{},~[].!").find(c) != std::string_view::npos) {
      ++i_;
      t->kind = Token::Kind::kPunct;
      t->punct = c;
      return Status::ok();
    }
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return error("unexpected byte 0x" + std::string(1, "0123456789abcdef"[static_cast<uint8_t>(c) >> 4]) +
                   "0123456789abcdef"[static_cast<uint8_t>(c) & 15]);
    }
    return error(std::string("unexpected '") + c + "'");
  }

  std::string_view s_;
  bool lark_;
  size_t i_ = 0, line_begin_ = 0;
  int line_ = 1;
};

// ---- syntax tree ----------------------------------------------------------------------------

struct Expr {
  enum class Kind { kAlt, kSeq, kString, kClass, kAny, kRegex, kRef, kRepeat };
  Kind kind = Kind::kSeq;
  std::vector<Expr> kids;
  std::string text;  // kString bytes, kRegex pattern, kRef name
  Ranges ranges;     // kClass (already complemented when negated)
  bool icase = false;
  int64_t min = 0, max = -1;  // kRepeat; max < 0: unbounded
  int line = 0, col = 0;
};

struct Definition {
  std::string name;
  Expr body;
  int line = 0, col = 0;
};

struct Directive {  // Lark %import / %ignore
  enum class Kind { kImport, kIgnore };
  Kind kind;
  std::string module, name, alias;  // kImport
  Expr expr;                        // kIgnore
  int line = 0, col = 0;
};

Ranges complementRanges(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : r) {
    if (lo > next) out.push_back({next, lo - 1});
    next = std::max(next, hi + 1);
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return out;
}

bool isTerminalName(const std::string& name) {
  for (char c : name) {
    if (c != '_') return std::isupper(static_cast<unsigned char>(c)) != 0;
  }
  return false;
}

class Parser {
 public:
  Parser(std::vector<Token> toks, GrammarSyntax syntax) : t_(std::move(toks)), lark_(syntax == GrammarSyntax::kLark) {}

  Status run(std::vector<Definition>* defs, std::vector<Directive>* directives) {
    while (cur().kind != Token::Kind::kEnd) {
      if (cur().kind == Token::Kind::kDirective) {
        TURBINE_RETURN_IF_ERROR(directive(directives));
        continue;
      }
      if (!definitionStart(i_)) {
        return error(lark_ ? "expected a definition 'name: ...' or a %directive" : "expected a rule 'name ::= ...'");
      }
      Definition d;
      d.line = cur().line, d.col = cur().col;
      if (isPunct('?') || isPunct('!')) ++i_;
      d.name = t_[i_++].text;
      if (isPunct('.')) i_ += 2;  // a terminal's priority
      ++i_;                       // the definer
      TURBINE_ASSIGN_OR_RETURN(d.body, alternation(0, d.line, d.col));
      defs->push_back(std::move(d));
    }
    return Status::ok();
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& at(size_t k) const { return t_[std::min(k, t_.size() - 1)]; }
  bool isPunct(char c) const { return cur().kind == Token::Kind::kPunct && cur().punct == c; }
  Status error(const std::string& what) const { return errorAt(cur().line, cur().col, what); }

  bool definitionStart(size_t k) const {
    using K = Token::Kind;
    if (!lark_) return at(k).kind == K::kIdent && at(k + 1).kind == K::kDefine;
    if (!at(k).line_start) return false;
    if (at(k).kind == K::kPunct && (at(k).punct == '?' || at(k).punct == '!')) ++k;
    if (at(k).kind != K::kIdent) return false;
    if (at(k + 1).kind == K::kPunct && at(k + 1).punct == '.' && at(k + 2).kind == K::kNumber) {
      return at(k + 3).kind == K::kDefine;
    }
    return at(k + 1).kind == K::kDefine;
  }

  bool sequenceEnds() const {
    using K = Token::Kind;
    const Token& t = cur();
    if (t.kind == K::kEnd || t.kind == K::kDirective || t.kind == K::kArrow) return true;
    if (t.kind == K::kPunct && (t.punct == '|' || t.punct == ')' || (lark_ && t.punct == ']'))) return true;
    return definitionStart(i_);
  }

  Status directive(std::vector<Directive>* out) {
    Directive d;
    d.line = cur().line, d.col = cur().col;
    const std::string name = cur().text;
    ++i_;
    if (name == "ignore") {
      d.kind = Directive::Kind::kIgnore;
      TURBINE_ASSIGN_OR_RETURN(d.expr, alternation(0, d.line, d.col));
      out->push_back(std::move(d));
      return Status::ok();
    }
    if (name != "import") {
      return errorAt(d.line, d.col, "%" + name + " is not supported (only %import common and %ignore)");
    }
    d.kind = Directive::Kind::kImport;
    if (cur().kind != Token::Kind::kIdent) return error("%import needs a module name");
    d.module = cur().text;
    ++i_;
    if (d.module != "common") {
      return errorAt(d.line, d.col, "%import " + d.module + ": only the terminals of 'common' can be imported");
    }
    if (isPunct('.')) {
      ++i_;
      if (cur().kind != Token::Kind::kIdent) return error("%import common. needs a name");
      d.name = d.alias = cur().text;
      ++i_;
      if (cur().kind == Token::Kind::kArrow) {
        ++i_;
        if (cur().kind != Token::Kind::kIdent) return error("'->' needs a name");
        d.alias = cur().text;
        ++i_;
      }
      out->push_back(d);
      return Status::ok();
    }
    if (!isPunct('(')) return error("expected '.NAME' or '(NAME, ...)' after %import common");
    ++i_;
    for (;;) {
      if (cur().kind != Token::Kind::kIdent) return error("expected a name to import");
      d.name = d.alias = cur().text;
      ++i_;
      out->push_back(d);
      if (isPunct(',')) {
        ++i_;
        continue;
      }
      if (!isPunct(')')) return error("expected ',' or ')'");
      ++i_;
      return Status::ok();
    }
  }

  Result<Expr> alternation(int depth, int line, int col) {
    if (depth > kMaxDepth) return error("groups nested too deeply");
    Expr alt;
    alt.kind = Expr::Kind::kAlt, alt.line = line, alt.col = col;
    for (;;) {
      Expr seq;
      seq.kind = Expr::Kind::kSeq, seq.line = cur().line, seq.col = cur().col;
      while (!sequenceEnds()) {
        TURBINE_ASSIGN_OR_RETURN(Expr item, postfix(depth));
        seq.kids.push_back(std::move(item));
      }
      if (cur().kind == Token::Kind::kArrow) {  // Lark alias: names a tree node, matches nothing
        ++i_;
        if (cur().kind != Token::Kind::kIdent) return error("'->' needs a name");
        ++i_;
      }
      alt.kids.push_back(std::move(seq));
      if (!isPunct('|')) break;
      ++i_;
    }
    if (alt.kids.size() == 1) return std::move(alt.kids[0]);
    return alt;
  }

  Result<Expr> postfix(int depth) {
    TURBINE_ASSIGN_OR_RETURN(Expr a, atom(depth));
    for (;;) {
      int64_t lo = 0, hi = -1;
      const int line = cur().line, col = cur().col;
      if (definitionStart(i_)) return a;  // `?rule:` on the next line is not a postfix `?`
      if (isPunct('*')) {
        ++i_;
      } else if (isPunct('+')) {
        ++i_, lo = 1;
      } else if (isPunct('?')) {
        ++i_, hi = 1;
      } else if (isPunct('{')) {
        ++i_;
        if (cur().kind != Token::Kind::kNumber) return error("expected a number after '{'");
        lo = hi = cur().number;
        ++i_;
        if (isPunct(',')) {
          ++i_;
          hi = -1;
          if (cur().kind == Token::Kind::kNumber) hi = cur().number, ++i_;
        }
        if (!isPunct('}')) return error("expected '}'");
        ++i_;
      } else if (lark_ && isPunct('~')) {
        ++i_;
        if (cur().kind != Token::Kind::kNumber) return error("expected a number after '~'");
        lo = hi = cur().number;
        ++i_;
        if (cur().kind == Token::Kind::kRange) {
          ++i_;
          if (cur().kind != Token::Kind::kNumber) return error("expected a number after '..'");
          hi = cur().number;
          ++i_;
        }
      } else {
        return a;
      }
      if (hi >= 0 && hi < lo) return errorAt(line, col, "repetition bounds out of order");
      if (std::max(lo, hi) > kMaxRepeat) return errorAt(line, col, "repetition counts above 4096 are not supported");
      Expr r;
      r.kind = Expr::Kind::kRepeat, r.min = lo, r.max = hi, r.line = line, r.col = col;
      r.kids.push_back(std::move(a));
      a = std::move(r);
    }
  }

  Result<Expr> atom(int depth) {
    using K = Token::Kind;
    Token& t = t_[i_];
    Expr e;
    e.line = t.line, e.col = t.col;
    switch (t.kind) {
      case K::kString:
        ++i_;
        if (lark_ && cur().kind == K::kRange) {  // "a".."z"
          ++i_;
          if (cur().kind != K::kString) return error("expected a string after '..'");
          const Token& hi = cur();
          auto single = [](const std::string& s) -> std::optional<uint32_t> {
            size_t k = 0;
            const uint32_t cp = s.empty() ? 0 : readUtf8(s, &k);
            if (s.empty() || k != s.size()) return std::nullopt;
            return cp;
          };
          const auto a = single(t.text), b = single(hi.text);
          if (!a || !b) return errorAt(e.line, e.col, "a range needs two one-character strings");
          if (*b < *a) return errorAt(e.line, e.col, "range out of order");
          ++i_;
          e.kind = Expr::Kind::kClass;
          e.ranges = {{*a, *b}};
          return e;
        }
        e.kind = Expr::Kind::kString, e.text = std::move(t.text), e.icase = t.icase;
        return e;
      case K::kClass:
        ++i_;
        e.kind = Expr::Kind::kClass;
        e.ranges = t.negated ? complementRanges(std::move(t.ranges)) : std::move(t.ranges);
        return e;
      case K::kRegex:
        ++i_;
        e.kind = Expr::Kind::kRegex, e.text = std::move(t.text);
        return e;
      case K::kIdent:
        ++i_;
        if (lark_ && isPunct('{') && at(i_ + 1).kind != K::kNumber) {
          return errorAt(e.line, e.col, "templates ('" + t.text + "{...}') are not supported");
        }
        e.kind = Expr::Kind::kRef, e.text = std::move(t.text);
        return e;
      case K::kPunct:
        if (t.punct == '(' || (lark_ && t.punct == '[')) {
          const char close = t.punct == '(' ? ')' : ']';
          ++i_;
          TURBINE_ASSIGN_OR_RETURN(Expr inner, alternation(depth + 1, e.line, e.col));
          if (!isPunct(close)) return error(std::string("expected '") + close + "'");
          ++i_;
          if (close == ')') return inner;
          e.kind = Expr::Kind::kRepeat, e.min = 0, e.max = 1;
          e.kids.push_back(std::move(inner));
          return e;
        }
        if (!lark_ && t.punct == '.') {
          ++i_;
          e.kind = Expr::Kind::kAny;
          return e;
        }
        return error(std::string("unexpected '") + t.punct + "'");
      case K::kDefine: return error(lark_ ? "unexpected ':'" : "unexpected '::='");
      case K::kNumber: return error("unexpected number");
      default: return error("unexpected token");
    }
  }

  std::vector<Token> t_;
  bool lark_;
  size_t i_ = 0;
};

// ---- compilation ----------------------------------------------------------------------------

class Compiler {
 public:
  explicit Compiler(GrammarSyntax syntax) : lark_(syntax == GrammarSyntax::kLark) {}

  Result<std::shared_ptr<const Grammar>> run(std::vector<Definition> defs, std::vector<Directive> directives) {
    if (lark_) {
      TURBINE_ASSIGN_OR_RETURN(std::vector<Token> toks, Lexer(kLarkCommon, GrammarSyntax::kLark).run());
      std::vector<Definition> common;
      std::vector<Directive> none;
      TURBINE_RETURN_IF_ERROR(Parser(std::move(toks), GrammarSyntax::kLark).run(&common, &none));
      for (Definition& d : common) common_.emplace(d.name, std::move(d));
    }
    for (Definition& d : defs) {
      if (user_.count(d.name) != 0) return errorAt(d.line, d.col, "'" + d.name + "' is defined twice");
      user_.emplace(d.name, std::move(d));
    }
    for (const Directive& d : directives) {
      if (d.kind != Directive::Kind::kImport) continue;
      if (common_.count(d.name) == 0) return errorAt(d.line, d.col, "common." + d.name + " is not a terminal this server knows");
      if (user_.count(d.alias) != 0 || imports_.count(d.alias) != 0) {
        return errorAt(d.line, d.col, "'" + d.alias + "' is defined twice");
      }
      imports_[d.alias] = d.name;
    }
    const std::string start = lark_ ? "start" : "root";
    if (user_.count(start) == 0) {
      return invalidArgument("grammar: no '" + start + "' rule (generation starts there)");
    }
    for (auto& [name, def] : user_) rules_[{false, name}] = b_.addRule(name);
    // %ignore: what may stand before each token of a rule and at the end.
    bool any_ignore = false;
    for (const Directive& d : directives) any_ignore = any_ignore || d.kind == Directive::Kind::kIgnore;
    if (any_ignore) {
      const int32_t ignored = b_.addRule("%ignore");
      ignore_star_ = b_.addRule("%ignore*");
      b_.addAlternative(ignore_star_, {});
      b_.addAlternative(ignore_star_, {GrammarBuilder::rule(ignored), GrammarBuilder::rule(ignore_star_)});
      for (const Directive& d : directives) {
        if (d.kind != Directive::Kind::kIgnore) continue;
        std::vector<Symbol> seq;
        TURBINE_RETURN_IF_ERROR(append(d.expr, false, false, "%ignore", &seq));
        b_.addAlternative(ignored, std::move(seq));
      }
    }
    for (auto& [name, def] : user_) {
      TURBINE_RETURN_IF_ERROR(define(rules_[{false, name}], def, false));
    }
    while (!pending_.empty()) {
      const std::string name = pending_.back();
      pending_.pop_back();
      TURBINE_RETURN_IF_ERROR(define(rules_[{true, name}], common_.at(name), true));
    }
    int32_t root = rules_[{false, start}];
    if (ignore_star_ >= 0) {
      const int32_t wrapped = b_.addRule(start + " %ignore*");
      b_.addAlternative(wrapped, {GrammarBuilder::rule(root), GrammarBuilder::rule(ignore_star_)});
      root = wrapped;
    }
    TURBINE_ASSIGN_OR_RETURN(Grammar g, std::move(b_).build(root));
    return std::make_shared<const Grammar>(std::move(g));
  }

 private:
  Status define(int32_t rule, const Definition& def, bool common) {
    const bool in_rule = lark_ && !common && !isTerminalName(def.name);
    if (def.body.kind == Expr::Kind::kAlt) {
      for (const Expr& alt : def.body.kids) {
        std::vector<Symbol> seq;
        TURBINE_RETURN_IF_ERROR(append(alt, in_rule, common, def.name, &seq));
        b_.addAlternative(rule, std::move(seq));
      }
      return Status::ok();
    }
    std::vector<Symbol> seq;
    TURBINE_RETURN_IF_ERROR(append(def.body, in_rule, common, def.name, &seq));
    b_.addAlternative(rule, std::move(seq));
    return Status::ok();
  }

  Result<int32_t> resolve(const Expr& ref, bool common) {
    const std::string& name = ref.text;
    if (!common) {
      if (auto it = rules_.find({false, name}); it != rules_.end()) return it->second;
      auto imp = imports_.find(name);
      if (imp == imports_.end()) {
        std::string hint;
        if (lark_ && common_.count(name) != 0) hint = " (add '%import common." + name + "')";
        return errorAt(ref.line, ref.col, "'" + name + "' is not defined" + hint);
      }
      return commonRule(imp->second);
    }
    if (common_.count(name) == 0) return errorAt(ref.line, ref.col, "'" + name + "' is not defined");
    return commonRule(name);
  }

  int32_t commonRule(const std::string& name) {
    auto [it, fresh] = rules_.try_emplace({true, name}, -1);
    if (fresh) {
      it->second = b_.addRule("common." + name);
      pending_.push_back(name);
    }
    return it->second;
  }

  Status grow(int64_t n, const Expr& e) {
    symbols_ += n;
    if (symbols_ > kMaxSymbols) return errorAt(e.line, e.col, "the grammar's repetitions make it too large");
    return Status::ok();
  }

  // Appends to `out` the symbols matching `e`. `in_rule`: inside a Lark rule (not a terminal),
  // where ignored text may precede each token.
  Status append(const Expr& e, bool in_rule, bool common, const std::string& owner, std::vector<Symbol>* out) {
    auto token = [&](Symbol s) {
      if (in_rule && ignore_star_ >= 0) out->push_back(GrammarBuilder::rule(ignore_star_));
      out->push_back(s);
    };
    switch (e.kind) {
      case Expr::Kind::kString: {
        if (e.text.empty()) return Status::ok();
        std::vector<Symbol> seq;
        for (char c : e.text) {
          const auto u = static_cast<uint8_t>(c);
          if (e.icase && std::isalpha(u)) {
            seq.push_back(b_.bytes(ByteSet::of(static_cast<uint8_t>(std::tolower(u))).add(static_cast<uint8_t>(std::toupper(u)))));
          } else {
            seq.push_back(b_.byte(u));
          }
        }
        TURBINE_RETURN_IF_ERROR(grow(static_cast<int64_t>(seq.size()), e));
        if (in_rule && ignore_star_ >= 0) out->push_back(GrammarBuilder::rule(ignore_star_));
        out->insert(out->end(), seq.begin(), seq.end());
        return Status::ok();
      }
      case Expr::Kind::kClass:
      case Expr::Kind::kAny: {
        auto s = addCodePointClass(&b_, e.kind == Expr::Kind::kAny ? Ranges{{0, kMaxCodePoint}} : e.ranges);
        if (!s.isOk()) return errorAt(e.line, e.col, "a character class that matches nothing");
        token(*s);
        return Status::ok();
      }
      case Expr::Kind::kRegex: {
        auto r = addRegexRule(&b_, e.text, RegexOptions{});
        if (!r.isOk()) return errorAt(e.line, e.col, "/" + e.text + "/: " + r.status().message());
        token(GrammarBuilder::rule(*r));
        return Status::ok();
      }
      case Expr::Kind::kRef: {
        TURBINE_ASSIGN_OR_RETURN(const int32_t r, resolve(e, common));
        const bool terminal = !common && isTerminalName(e.text);
        if (terminal) {
          token(GrammarBuilder::rule(r));
        } else {
          out->push_back(GrammarBuilder::rule(r));
        }
        return Status::ok();
      }
      case Expr::Kind::kSeq:
        for (const Expr& k : e.kids) TURBINE_RETURN_IF_ERROR(append(k, in_rule, common, owner, out));
        return Status::ok();
      case Expr::Kind::kAlt: {
        const int32_t r = b_.addRule(owner + "_group");
        for (const Expr& k : e.kids) {
          std::vector<Symbol> seq;
          TURBINE_RETURN_IF_ERROR(append(k, in_rule, common, owner, &seq));
          b_.addAlternative(r, std::move(seq));
        }
        out->push_back(GrammarBuilder::rule(r));
        return Status::ok();
      }
      case Expr::Kind::kRepeat: {
        std::vector<Symbol> body;
        TURBINE_RETURN_IF_ERROR(append(e.kids[0], in_rule, common, owner, &body));
        if (body.empty()) return Status::ok();  // ""* matches the empty string only
        Symbol a = body[0];
        if (body.size() > 1) {
          const int32_t r = b_.addRule(owner + "_item");
          b_.addAlternative(r, std::move(body));
          a = GrammarBuilder::rule(r);
        }
        TURBINE_RETURN_IF_ERROR(grow(e.min + std::max<int64_t>(e.max - e.min, 1) * 2, e));
        // min copies, then up to (max - min) optional ones (any number when max < 0).
        const int32_t tail = b_.addRule(owner + "_repeat");
        b_.addAlternative(tail, {});
        if (e.max < 0) {
          b_.addAlternative(tail, {a, GrammarBuilder::rule(tail)});
        } else {
          int32_t next = tail;
          for (int64_t k = e.min; k < e.max; ++k) {
            const int32_t r = b_.addRule(owner + "_repeat");
            b_.addAlternative(r, {});
            b_.addAlternative(next, {a, GrammarBuilder::rule(r)});
            next = r;
          }
        }
        out->insert(out->end(), static_cast<size_t>(e.min), a);
        out->push_back(GrammarBuilder::rule(tail));
        return Status::ok();
      }
    }
    return Status::ok();
  }

  bool lark_;
  GrammarBuilder b_;
  std::map<std::string, Definition> user_, common_;
  std::map<std::string, std::string> imports_;                  // alias -> common name
  std::map<std::pair<bool, std::string>, int32_t> rules_;       // (common?, name) -> rule
  std::vector<std::string> pending_;                            // common rules to define
  int32_t ignore_star_ = -1;
  int64_t symbols_ = 0;
};

}  // namespace

GrammarSyntax detectGrammarSyntax(std::string_view text) {
  // The first line that is neither blank nor a comment decides; `::=` anywhere else breaks ties.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.remove_prefix(1);
    if (line.empty() || line.front() == '#' || line.substr(0, 2) == "//") continue;
    if (line.front() == '%') return GrammarSyntax::kLark;
    size_t k = (line.front() == '?' || line.front() == '!') ? 1 : 0;
    while (k < line.size() && (std::isalnum(static_cast<unsigned char>(line[k])) || line[k] == '_' || line[k] == '.')) ++k;
    while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
    if (k > 0 && line.substr(k, 3) == "::=") return GrammarSyntax::kGbnf;
    if (k > 0 && k < line.size() && line[k] == ':') return GrammarSyntax::kLark;
    break;
  }
  return text.find("::=") != std::string_view::npos ? GrammarSyntax::kGbnf : GrammarSyntax::kLark;
}

Result<std::shared_ptr<const Grammar>> compileGrammarText(std::string_view text, GrammarSyntax syntax) {
  if (syntax == GrammarSyntax::kAuto) syntax = detectGrammarSyntax(text);
  const char* name = syntax == GrammarSyntax::kLark ? "Lark" : "GBNF";
  auto result = [&]() -> Result<std::shared_ptr<const Grammar>> {
    TURBINE_ASSIGN_OR_RETURN(std::vector<Token> toks, Lexer(text, syntax).run());
    std::vector<Definition> defs;
    std::vector<Directive> directives;
    TURBINE_RETURN_IF_ERROR(Parser(std::move(toks), syntax).run(&defs, &directives));
    return Compiler(syntax).run(std::move(defs), std::move(directives));
  }();
  if (!result.isOk()) return invalidArgument(result.status().message() + " (read as " + name + ")");
  return result;
}

}  // namespace turbine::structured
