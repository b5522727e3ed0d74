// Regular expressions -> Grammar rules (vLLM's `guided_regex`, JSON schema `pattern`).
//
// Syntax (the common subset of Python's `re` and ECMAScript): literals; `.` (any character but
// newline); classes `[...]`, `[^...]` with ranges; escapes \d \w \s \D \W \S \n \t \r \f \v \0
// \xHH \uHHHH and escaped punctuation; groups `(...)`, `(?:...)`, `(?P<name>...)`, `(?<name>...)`;
// alternation `|`; quantifiers `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` (a lazy or possessive suffix
// is accepted: it matches the same strings); `^` at the start and `$` at the end. Characters are
// UTF-8 code points. Backreferences, lookaround and anchors elsewhere are refused with
// InvalidArgument naming the offset.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "structured/grammar.h"

namespace turbine::structured {

struct RegexOptions {
  // The regex constrains a JSON string's value (schema `pattern`): characters that JSON must
  // escape are written escaped, and classes and `.` never produce `"`, `\` or control bytes.
  bool json_string = false;
  // Match anywhere (JSON schema semantics) unless anchored with ^ / $; false: the whole text.
  bool search = false;
};

// A symbol matching one UTF-8 encoded code point in `ranges` (closed ranges, any order; code
// points above U+10FFFF and surrogates are left out). InvalidArgument when nothing is left.
// Regexes, grammar texts and schemas share it.
Result<Symbol> addCodePointClass(GrammarBuilder* b, std::vector<std::pair<uint32_t, uint32_t>> ranges);

// The UTF-8 encoding of code point `c` (<= U+10FFFF).
std::string utf8(uint32_t c);

// The code point starting at s[*i] (s is not empty there), *i moved past it; a sequence cut
// short gives what its bytes spell.
uint32_t readUtf8(std::string_view s, size_t* i);

// The escape after a backslash, at s[*i], *i moved past it: \n \r \t \f \v \0, \xHH, \uHHHH,
// \UHHHHHHHH when `long_u`, or punctuation / a non-ASCII character standing for itself.
// InvalidArgument with a message without position (the caller adds it) otherwise.
Result<uint32_t> readEscape(std::string_view s, size_t* i, bool long_u);

// Adds the rules for `pattern` to `b`; returns the rule matching it.
Result<int32_t> addRegexRule(GrammarBuilder* b, std::string_view pattern, const RegexOptions& options);

// A grammar whose sentences are exactly the strings `pattern` matches in full.
Result<std::shared_ptr<const Grammar>> compileRegex(std::string_view pattern);

}  // namespace turbine::structured
