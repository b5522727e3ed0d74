#include "model/jinja/parser.h"

#include <algorithm>
#include <cstdlib>

namespace turbine::model::jinja {
namespace {

constexpr int kMaxNesting = 200;     // recursive descent / block nesting; deeper templates are rejected
constexpr int kMaxExprDepth = 300;  // height of one expression tree (also bounds eval recursion)

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  StmtList parseTemplate() {
    StmtList body = subparse({});
    if (cur().type != TokenType::kEof) fail("unexpected '" + cur().text + "'");
    return body;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return t_[pos_]; }
  const Token& look() const { return t_[std::min(pos_ + 1, t_.size() - 1)]; }
  const Token& next() {
    const Token& tok = t_[pos_];
    if (pos_ + 1 < t_.size()) ++pos_;
    return tok;
  }
  bool isOp(const char* op) const { return cur().type == TokenType::kOp && cur().text == op; }
  bool isName(const char* name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skipOp(const char* op) {
    if (!isOp(op)) return false;
    next();
    return true;
  }
  bool skipName(const char* name) {
    if (!isName(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw JinjaError{JinjaError::Type::kSyntax, what, cur().line};
  }
  static std::string describe(const Token& tok) {
    switch (tok.type) {
      case TokenType::kEof: return "end of template";
      case TokenType::kBlockEnd: return "end of statement block";
      case TokenType::kVarEnd: return "end of print statement";
      default: return tok.text;
    }
  }
  void expectOp(const char* op) {
    if (!skipOp(op)) fail(std::string("expected token '") + op + "', got '" + describe(cur()) + "'");
  }
  std::string expectName() {
    if (cur().type != TokenType::kName) fail("expected name, got '" + describe(cur()) + "'");
    return next().text;
  }
  void expectBlockEnd() {
    if (cur().type != TokenType::kBlockEnd) fail("expected end of statement block, got '" + describe(cur()) + "'");
    next();
  }
  struct Depth {
    explicit Depth(Parser* p) : p_(p) {
      if (++p_->depth_ > kMaxNesting) p_->fail("template nesting too deep");
    }
    ~Depth() { --p_->depth_; }
    Parser* p_;
  };

  ExprPtr node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Records the subtree height of a finished node; rejects expressions too deep to evaluate.
  ExprPtr finish(ExprPtr e) {
    int d = 0;
    for (const Expr* c : {e->a.get(), e->b.get(), e->c.get()}) {
      if (c) d = std::max(d, c->depth);
    }
    for (const auto& c : e->args) d = std::max(d, c->depth);
    for (const auto& kv : e->kwargs) d = std::max(d, kv.second->depth);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth) fail("expression too deeply nested");
    return e;
  }

  // ---- statements ----
  // Parses until `{% <one of ends> ...`; leaves the end name as the current token.
  StmtList subparse(const std::vector<std::string>& ends) {
    Depth guard(this);
    StmtList body;
    while (true) {
      const Token& tok = cur();
      if (tok.type == TokenType::kEof) {
        if (!ends.empty()) fail("Unexpected end of template. Jinja was looking for the following tags: '" + ends[0] + "'.");
        return body;
      }
      if (tok.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = tok.line;
        s->text = tok.text;
        body.push_back(std::move(s));
        next();
      } else if (tok.type == TokenType::kVarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kPrint;
        s->line = tok.line;
        s->expr = parseTuple(true);
        if (cur().type != TokenType::kVarEnd) fail("expected end of print statement, got '" + describe(cur()) + "'");
        next();
        body.push_back(std::move(s));
      } else if (tok.type == TokenType::kBlockBegin) {
        next();
        if (cur().type == TokenType::kName && std::find(ends.begin(), ends.end(), cur().text) != ends.end()) return body;
        body.push_back(parseStatement());
      } else {
        fail("unexpected '" + describe(tok) + "'");
      }
    }
  }

  StmtPtr parseStatement() {
    if (cur().type != TokenType::kName) fail("tag name expected");
    std::string kw = cur().text;
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    next();
    if (kw == "if") return parseIf(std::move(s));
    if (kw == "for") return parseFor(std::move(s));
    if (kw == "set") return parseSet(std::move(s));
    if (kw == "macro") return parseMacro(std::move(s));
    if (kw == "call") return parseCallBlock(std::move(s));
    if (kw == "filter") return parseFilterBlock(std::move(s));
    if (kw == "with") return parseWith(std::move(s));
    if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) fail("'" + kw + "' outside of a loop");
      s->kind = kw == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      expectBlockEnd();
      return s;
    }
    fail("Encountered unknown tag '" + kw + "'.");
  }

  StmtList parseBody(const std::vector<std::string>& ends, bool drop_needle) {
    StmtList body = subparse(ends);
    if (drop_needle) {
      next();
      expectBlockEnd();
    }
    return body;
  }

  StmtPtr parseIf(StmtPtr s) {
    s->kind = StmtKind::kIf;
    while (true) {
      ExprPtr test = parseTuple(false);
      expectBlockEnd();
      StmtList body = parseBody({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(body));
      std::string which = next().text;
      if (which == "elif") continue;
      if (which == "else") {
        expectBlockEnd();
        s->else_body = parseBody({"endif"}, true);
      } else {
        expectBlockEnd();
      }
      return s;
    }
  }

  StmtPtr parseFor(StmtPtr s) {
    s->kind = StmtKind::kFor;
    s->target = parseAssignTarget("in");
    if (!skipName("in")) fail("expected 'in'");
    s->expr = parseTuple(false, "recursive");
    if (skipName("if")) s->filter = parseExpression(true);
    if (skipName("recursive")) fail("recursive for loops are not supported");
    expectBlockEnd();
    ++loop_depth_;
    s->body = parseBody({"endfor", "else"}, false);
    --loop_depth_;
    if (next().text == "else") {
      expectBlockEnd();
      int saved = loop_depth_;
      loop_depth_ = 0;
      s->else_body = parseBody({"endfor"}, true);
      loop_depth_ = saved;
    } else {
      expectBlockEnd();
    }
    return s;
  }

  ExprPtr parseAssignTarget(const char* end_name) {
    int line = cur().line;
    std::vector<ExprPtr> names;
    bool is_tuple = false;
    while (true) {
      if (!names.empty()) expectOp(",");
      if ((end_name && isName(end_name)) || isOp("=") || cur().type == TokenType::kBlockEnd) break;
      auto n = node(ExprKind::kName, cur().line);
      n->name = expectName();
      names.push_back(std::move(n));
      if (isOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (names.empty()) fail("expected an assignment target");
    if (!is_tuple) return std::move(names[0]);
    auto t = node(ExprKind::kTuple, line);
    t->args = std::move(names);
    return t;
  }

  StmtPtr parseSet(StmtPtr s) {
    if (cur().type == TokenType::kName && look().type == TokenType::kOp && look().text == ".") {
      s->name = next().text;
      next();
      s->attr = expectName();
    } else {
      s->target = parseAssignTarget(nullptr);
    }
    if (skipOp("=")) {
      s->kind = StmtKind::kSet;
      s->expr = parseTuple(true);
      expectBlockEnd();
      return s;
    }
    if (!s->attr.empty()) fail("namespace attribute assignment needs '='");
    s->kind = StmtKind::kSetBlock;
    if (isOp("|")) s->filter = parseFilter(nullptr);
    expectBlockEnd();
    s->body = parseBody({"endset"}, true);
    return s;
  }

  void parseSignature(Stmt* s) {
    expectOp("(");
    while (!isOp(")")) {
      if (!s->params.empty()) expectOp(",");
      s->params.push_back(expectName());
      if (skipOp("=")) {
        s->defaults.push_back(parseExpression(true));
      } else if (!s->defaults.empty()) {
        fail("non-default argument follows default argument");
      }
    }
    expectOp(")");
  }

  StmtPtr parseMacro(StmtPtr s) {
    s->kind = StmtKind::kMacro;
    s->name = expectName();
    parseSignature(s.get());
    expectBlockEnd();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parseBody({"endmacro"}, true);
    loop_depth_ = saved;
    return s;
  }

  StmtPtr parseCallBlock(StmtPtr s) {
    s->kind = StmtKind::kCallBlock;
    if (isOp("(")) parseSignature(s.get());
    s->expr = parseExpression(true);
    if (s->expr->kind != ExprKind::kCall) fail("expected call");
    expectBlockEnd();
    s->body = parseBody({"endcall"}, true);
    return s;
  }

  StmtPtr parseFilterBlock(StmtPtr s) {
    s->kind = StmtKind::kFilterBlock;
    s->filter = parseFilter(nullptr, true);
    expectBlockEnd();
    s->body = parseBody({"endfilter"}, true);
    return s;
  }

  StmtPtr parseWith(StmtPtr s) {
    s->kind = StmtKind::kWith;
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->assigns.empty()) expectOp(",");
      std::string name = expectName();
      expectOp("=");
      s->assigns.emplace_back(name, parseExpression(true));
    }
    next();
    s->body = parseBody({"endwith"}, true);
    return s;
  }

  // ---- expressions ----
  ExprPtr parseTuple(bool with_condexpr, const char* extra_end = nullptr) {
    int line = cur().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expectOp(",");
      if (isTupleEnd(extra_end)) break;
      args.push_back(parseExpression(with_condexpr));
      if (isOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    auto t = node(ExprKind::kTuple, line);
    t->args = std::move(args);
    return finish(std::move(t));
  }
  bool isTupleEnd(const char* extra_end) const {
    TokenType ty = cur().type;
    if (ty == TokenType::kVarEnd || ty == TokenType::kBlockEnd || ty == TokenType::kEof) return true;
    if (ty == TokenType::kOp && (cur().text == ")" || cur().text == "]" || cur().text == "}")) return true;
    return extra_end && isName(extra_end);
  }

  ExprPtr parseExpression(bool with_condexpr) {
    Depth guard(this);
    return with_condexpr ? parseCondExpr() : parseOr();
  }

  ExprPtr parseCondExpr() {
    int line = cur().line;
    ExprPtr expr1 = parseOr();
    while (skipName("if")) {
      auto cond = node(ExprKind::kCond, line);
      cond->a = parseOr();
      if (skipName("else")) cond->c = parseCondExpr();
      cond->b = std::move(expr1);
      expr1 = finish(std::move(cond));
    }
    return expr1;
  }

  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, int line) {
    auto e = node(ExprKind::kBinary, line);
    e->name = op;
    e->a = std::move(l);
    e->b = std::move(r);
    return finish(std::move(e));
  }

  ExprPtr parseOr() {
    ExprPtr left = parseAnd();
    while (isName("or")) {
      int line = next().line;
      left = binary("or", std::move(left), parseAnd(), line);
    }
    return left;
  }
  ExprPtr parseAnd() {
    ExprPtr left = parseNot();
    while (isName("and")) {
      int line = next().line;
      left = binary("and", std::move(left), parseNot(), line);
    }
    return left;
  }
  ExprPtr parseNot() {
    if (isName("not")) {
      Depth guard(this);
      auto e = node(ExprKind::kUnary, next().line);
      e->name = "not";
      e->a = parseNot();
      return finish(std::move(e));
    }
    return parseCompare();
  }

  ExprPtr parseCompare() {
    int line = cur().line;
    ExprPtr expr = parseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (skipName("in")) {
        op = "in";
      } else if (isName("not") && look().type == TokenType::kName && look().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(ExprKind::kCompare, line);
        cmp->a = std::move(expr);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parseMath1());
    }
    return cmp ? finish(std::move(cmp)) : std::move(expr);
  }

  ExprPtr parseMath1() {
    ExprPtr left = parseConcat();
    while (isOp("+") || isOp("-")) {
      const Token& op = next();
      left = binary(op.text, std::move(left), parseConcat(), op.line);
    }
    return left;
  }
  ExprPtr parseConcat() {
    int line = cur().line;
    ExprPtr first = parseMath2();
    if (!isOp("~")) return first;
    auto e = node(ExprKind::kConcat, line);
    e->args.push_back(std::move(first));
    while (skipOp("~")) e->args.push_back(parseMath2());
    return finish(std::move(e));
  }
  ExprPtr parseMath2() {
    ExprPtr left = parsePow();
    while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
      const Token& op = next();
      left = binary(op.text, std::move(left), parsePow(), op.line);
    }
    return left;
  }
  ExprPtr parsePow() {
    ExprPtr left = parseUnary(true);
    while (isOp("**")) {
      int line = next().line;
      left = binary("**", std::move(left), parseUnary(true), line);
    }
    return left;
  }

  ExprPtr parseUnary(bool with_filter) {
    Depth guard(this);
    ExprPtr e;
    if (isOp("-") || isOp("+")) {
      const Token& op = next();
      e = node(ExprKind::kUnary, op.line);
      e->name = op.text;
      e->a = parseUnary(false);
      e = finish(std::move(e));
    } else {
      e = parsePrimary();
    }
    e = parsePostfix(std::move(e));
    if (with_filter) e = parseFilterExpr(std::move(e));
    return e;
  }

  ExprPtr parsePrimary() {
    const Token& tok = cur();
    int line = tok.line;
    if (tok.type == TokenType::kName) {
      next();
      auto e = node(ExprKind::kConst, line);
      if (tok.text == "true" || tok.text == "True") {
        e->value = Value(true);
      } else if (tok.text == "false" || tok.text == "False") {
        e->value = Value(false);
      } else if (tok.text == "none" || tok.text == "None") {
        e->value = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = tok.text;
      }
      return e;
    }
    if (tok.type == TokenType::kString) {
      std::string s;
      while (cur().type == TokenType::kString) s += next().text;
      auto e = node(ExprKind::kConst, line);
      e->value = Value(std::move(s));
      return e;
    }
    if (tok.type == TokenType::kInt || tok.type == TokenType::kFloat) {
      next();
      auto e = node(ExprKind::kConst, line);
      if (tok.type == TokenType::kFloat) {
        e->value = Value(std::strtod(tok.text.c_str(), nullptr));
      } else {
        errno = 0;
        long long v = std::strtoll(tok.text.c_str(), nullptr, 10);
        if (errno == ERANGE) fail("integer literal too large: " + tok.text);
        e->value = Value(static_cast<int64_t>(v));
      }
      return e;
    }
    if (skipOp("(")) {
      ExprPtr e = parseTupleParen();
      expectOp(")");
      return e;
    }
    if (isOp("[")) return parseList();
    if (isOp("{")) return parseDict();
    fail("unexpected '" + describe(tok) + "'");
  }

  ExprPtr parseTupleParen() {
    int line = cur().line;
    if (isOp(")")) return node(ExprKind::kTuple, line);  // ()
    ExprPtr first = parseExpression(true);
    if (!isOp(",")) return first;
    auto t = node(ExprKind::kTuple, line);
    t->args.push_back(std::move(first));
    while (skipOp(",")) {
      if (isOp(")")) break;
      t->args.push_back(parseExpression(true));
    }
    return finish(std::move(t));
  }

  ExprPtr parseList() {
    auto e = node(ExprKind::kList, next().line);
    while (!isOp("]")) {
      if (!e->args.empty()) expectOp(",");
      if (isOp("]")) break;
      e->args.push_back(parseExpression(true));
    }
    expectOp("]");
    return finish(std::move(e));
  }

  ExprPtr parseDict() {
    auto e = node(ExprKind::kDict, next().line);
    while (!isOp("}")) {
      if (!e->args.empty()) expectOp(",");
      if (isOp("}")) break;
      e->args.push_back(parseExpression(true));
      expectOp(":");
      e->args.push_back(parseExpression(true));
    }
    expectOp("}");
    return finish(std::move(e));
  }

  ExprPtr parsePostfix(ExprPtr e) {
    while (true) {
      if (isOp(".") || isOp("[")) {
        e = parseSubscript(std::move(e));
      } else if (isOp("(")) {
        e = parseCall(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parseFilterExpr(ExprPtr e) {
    while (true) {
      if (isOp("|")) {
        e = parseFilter(std::move(e));
      } else if (isName("is")) {
        e = parseTest(std::move(e));
      } else if (isOp("(")) {
        e = parseCall(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parseSubscript(ExprPtr obj) {
    const Token& tok = next();
    if (tok.text == ".") {
      const Token& attr = next();
      if (attr.type == TokenType::kName) {
        auto e = node(ExprKind::kGetAttr, tok.line);
        e->a = std::move(obj);
        e->name = attr.text;
        return finish(std::move(e));
      }
      if (attr.type != TokenType::kInt) fail("expected name or number");
      auto e = node(ExprKind::kGetItem, tok.line);
      e->a = std::move(obj);
      e->b = node(ExprKind::kConst, tok.line);
      e->b->value = Value(static_cast<int64_t>(std::strtoll(attr.text.c_str(), nullptr, 10)));
      return finish(std::move(e));
    }
    std::vector<ExprPtr> args;
    while (!isOp("]")) {
      if (!args.empty()) expectOp(",");
      args.push_back(parseSubscribed());
    }
    expectOp("]");
    auto e = node(ExprKind::kGetItem, tok.line);
    e->a = std::move(obj);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = node(ExprKind::kTuple, tok.line);
      e->b->args = std::move(args);
      e->b = finish(std::move(e->b));
    }
    return finish(std::move(e));
  }

  ExprPtr parseSubscribed() {
    int line = cur().line;
    ExprPtr start;
    if (!isOp(":")) {
      start = parseExpression(true);
      if (!isOp(":")) return start;
    }
    next();  // ':'
    auto slice = node(ExprKind::kSlice, line);
    slice->a = std::move(start);
    if (!isOp(":") && !isOp("]") && !isOp(",")) slice->b = parseExpression(true);
    if (skipOp(":")) {
      if (!isOp("]") && !isOp(",")) slice->c = parseExpression(true);
    }
    return finish(std::move(slice));
  }

  void parseCallArgs(Expr* e) {
    expectOp("(");
    bool need_comma = false;
    while (!isOp(")")) {
      if (need_comma) {
        expectOp(",");
        if (isOp(")")) break;
      }
      if (isOp("*") || isOp("**")) fail("*args / **kwargs in calls are not supported");
      if (cur().type == TokenType::kName && look().type == TokenType::kOp && look().text == "=") {
        std::string key = next().text;
        next();
        e->kwargs.emplace_back(key, parseExpression(true));
      } else {
        if (!e->kwargs.empty()) fail("invalid syntax for function call expression");
        e->args.push_back(parseExpression(true));
      }
      need_comma = true;
    }
    expectOp(")");
  }

  ExprPtr parseCall(ExprPtr fn) {
    auto e = node(ExprKind::kCall, cur().line);
    e->a = std::move(fn);
    parseCallArgs(e.get());
    return finish(std::move(e));
  }

  ExprPtr parseFilter(ExprPtr obj, bool start_inline = false) {
    while (isOp("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      auto e = node(ExprKind::kFilter, cur().line);
      e->name = expectName();
      while (skipOp(".")) e->name += "." + expectName();
      if (isOp("(")) parseCallArgs(e.get());
      e->a = std::move(obj);
      obj = finish(std::move(e));
    }
    return obj;
  }

  ExprPtr parseTest(ExprPtr obj) {
    int line = next().line;  // 'is'
    bool negated = skipName("not");
    auto e = node(ExprKind::kTest, line);
    e->name = expectName();
    while (skipOp(".")) e->name += "." + expectName();
    e->a = std::move(obj);
    TokenType ty = cur().type;
    if (isOp("(")) {
      parseCallArgs(e.get());
    } else if ((ty == TokenType::kName || ty == TokenType::kString || ty == TokenType::kInt ||
                ty == TokenType::kFloat || isOp("[") || isOp("{")) &&
               !isName("else") && !isName("or") && !isName("and")) {
      if (isName("is")) fail("You cannot chain multiple tests with is");
      e->args.push_back(parsePostfix(parsePrimary()));
    }
    e = finish(std::move(e));
    if (!negated) return e;
    auto n = node(ExprKind::kUnary, line);
    n->name = "not";
    n->a = std::move(e);
    return finish(std::move(n));
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Result<StmtList> parse(const std::vector<Token>& tokens) {
  try {
    return Parser(tokens).parseTemplate();
  } catch (const JinjaError& e) {
    return invalidArgument("line " + std::to_string(e.line) + ": " + e.message);
  }
}

}  // namespace turbine::model::jinja
