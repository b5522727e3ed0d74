// The syntax tree of a parsed template: expressions (Expr) and statements (Stmt), as
// jinja2.nodes names them. Nodes are immutable after parsing and own their children.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja/value.h"

namespace turbine::model::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

enum class ExprKind {
  kConst,      // value
  kName,       // name
  kGetAttr,    // a.name
  kGetItem,    // a[b]
  kSlice,      // a:b:c (any may be null); only as the b of kGetItem
  kCall,       // a(args, kwargs)
  kFilter,     // a | name(args, kwargs); a is null in a filter block
  kTest,       // a is name(args)
  kUnary,      // op a: "-", "+", "not"
  kBinary,     // a op b: + - * / // % ** and or
  kCompare,    // a (ops[i] args[i])...: == != < <= > >= in notin
  kConcat,     // args joined with ~
  kCond,       // b if a else c (c may be null)
  kList,       // [args]
  kTuple,      // (args)
  kDict,       // {args[2i]: args[2i+1]}
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  int line = 0;
  int depth = 1;  // height of this subtree (bounded by the parser)
  Value value;
  std::string name;  // name / attribute / filter / test / operator
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare operators
};

enum class StmtKind {
  kText,      // text
  kPrint,     // {{ expr }}
  kIf,        // branches (test, body) + else_body
  kFor,       // target in iter [if filter] body [else else_body]
  kSet,       // target = expr, or ns.attr = expr (attr non-empty)
  kSetBlock,  // {% set target %}body{% endset %} with optional filter
  kMacro,     // name(params=defaults) body
  kCallBlock, // {% call macro(...) %}body{% endcall %}
  kFilterBlock,
  kWith,      // {% with a = x, ... %}body
  kBreak,
  kContinue,
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;    // print / set value / for iter / filter block filter / call expr
  ExprPtr target;  // set / for target (kName or kTuple of names)
  ExprPtr filter;  // for-loop filter, set-block filter
  std::string name, attr;  // macro name; ns.attr assignment
  std::vector<std::pair<ExprPtr, StmtList>> branches;  // if / elif
  StmtList body, else_body;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // aligned to the last params
  std::vector<std::pair<std::string, ExprPtr>> assigns;  // with
  bool recursive = false;
};

}  // namespace turbine::model::jinja
