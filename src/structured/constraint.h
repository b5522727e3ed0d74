// OutputConstraint: what a request asks its output to be (structured output / guided decoding,
// as vLLM's `guided_json`, `guided_choice`, `guided_regex`, `guided_grammar` and the OpenAI
// `response_format`),
// in the one form that travels from the frontend to the engine (DESIGN.md §3.4, docs/design.md
// "Structured output"), and its compilation into a Grammar.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "structured/grammar.h"

namespace turbine::structured {

struct OutputConstraint {
  enum class Kind { kJsonSchema, kChoice, kRegex, kGrammar };
  Kind kind = Kind::kJsonSchema;
  // kJsonSchema: a JSON schema, as JSON text (`{"type": "object"}` for any object; `{}` or `true`
  // for any JSON value); kChoice: a JSON array of strings, the output is exactly one of them;
  // kRegex: a regular expression the whole output must match; kGrammar: a context-free grammar
  // in GBNF or Lark syntax (grammar_text.h), the output is one of its sentences.
  std::string spec;
  // The last resume_tokens tokens of the prompt were generated under this constraint already (a
  // request that migrated to another worker mid-output): the output continues them.
  int32_t resume_tokens = 0;
  bool operator==(const OutputConstraint&) const = default;
  bool sameRule(const OutputConstraint& o) const { return kind == o.kind && spec == o.spec; }
};

// "json_schema", "choice", "regex", "grammar": the names used on the wire (proto, logs).
const char* kindName(OutputConstraint::Kind kind);
std::optional<OutputConstraint::Kind> kindFromName(std::string_view name);

// InvalidArgument naming what is wrong (unsupported keyword with its path in the schema, bad
// regex, empty choice list, ...).
Result<std::shared_ptr<const Grammar>> compileConstraint(const OutputConstraint& constraint);

}  // namespace turbine::structured
