// Parser: tokens -> statement list, following jinja2.parser's grammar and operator precedence
// (condexpr < or < and < not < compare/in < + - < ~ < * / // % < ** < unary < postfix/filters/tests).
// Supported statements: if/elif/else, for (tuple targets, `if` filter, else, recursive not
// supported), set (name, tuple, ns.attr, block form), macro, call, filter, with, break, continue,
// raw. extends/include/import/block are rejected (a chat template is one self-contained file).
#pragma once

#include <vector>

#include "common/status.h"
#include "model/jinja/ast.h"
#include "model/jinja/lexer.h"

namespace turbine::model::jinja {

// Errors are InvalidArgument "line N: <what>".
Result<StmtList> parse(const std::vector<Token>& tokens);

}  // namespace turbine::model::jinja
