// Grammar texts -> Grammar: vLLM's `guided_grammar` / `structured_outputs.grammar`, in the two
// syntaxes users send (docs/serve.md "Structured output").
//
// GBNF / EBNF (llama.cpp's and XGrammar's): `name ::= body`, generation starts at `root`.
//   Bodies: "strings" (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), character classes [a-z],
//   [^"\\] (code points, same escapes), `.` (any character), rule names, ( groups ),
//   alternatives `|`, and the repetitions `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`. Comments: `#`.
//   A rule's body runs on across lines until the next `name ::=`.
// Lark (vLLM's older grammar backend): rules `name: body` and terminals `NAME: body` (a `?` or `!`
//   before a rule name and a terminal's `.priority` are accepted and change nothing), generation
//   starts at `start`. Bodies: "strings" ("..."i: any letter case), /regular expressions/ (the
//   syntax of regex.h, no flags), "a".."z" character ranges, names, ( groups ), [ optional ],
//   `|`, `*`, `+`, `?`, `~ n`, `~ n..m` (and `{n,m}`), `-> alias` (ignored). Directives:
//   `%import common.NAME` or `%import common (A, B)` (the terminals of Lark's common.lark:
//   numbers, ESCAPED_STRING, WORD, CNAME, WS, NEWLINE, ...) and `%ignore` (what may stand
//   between the tokens of rules: before each string, regex or terminal used in a rule, and at
//   the end). Comments: `//` and `#`. Templates and other imports are refused.
// Both: direct left recursion (`expr: expr "+" term | term`) is fine; indirect left recursion is
// refused. Errors are InvalidArgument naming the line and column, or the rule.
#pragma once

#include <memory>
#include <string_view>

#include "common/status.h"
#include "structured/grammar.h"

namespace turbine::structured {

enum class GrammarSyntax { kAuto, kGbnf, kLark };

// kGbnf when the text defines its rules with `::=`, else kLark.
GrammarSyntax detectGrammarSyntax(std::string_view text);

Result<std::shared_ptr<const Grammar>> compileGrammarText(std::string_view text,
                                                          GrammarSyntax syntax = GrammarSyntax::kAuto);

}  // namespace turbine::structured
