// Lexer: template source -> tokens, with Jinja2's whitespace control applied exactly as
// jinja2.lexer does it for trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False:
//  - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after it;
//  - trim_blocks: the first newline after `%}` / `#}` is dropped (not after `}}`); `+%}` keeps it;
//  - lstrip_blocks: spaces/tabs between a line start and `{%` / `{#` are dropped; `{%+` keeps them;
//  - one trailing newline of the source is dropped; \r\n and \r become \n.
// Comments produce no tokens; `{% raw %}...{% endraw %}` produces one data token.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::model::jinja {

enum class TokenType { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;  // data text, name, decoded string literal, operator, or number spelling
  int line = 1;
};

// Errors are InvalidArgument "line N: <what>".
Result<std::vector<Token>> tokenize(const std::string& source);

}  // namespace turbine::model::jinja
