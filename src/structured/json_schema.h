// JSON schema -> Grammar (the part of JSON Schema that constrains generation).
//
// Supported: type (one or a list), enum, const, properties (generated in the schema's order;
// required ones always, the others optionally), required, additionalProperties (false when
// `properties` is given and it is absent, as OpenAI's strict mode; any value when neither is),
// items, prefixItems, minItems, maxItems, minLength, maxLength, anyOf / oneOf (as anyOf), allOf
// with one schema, $ref into the document (#, #/$defs/..., #/definitions/..., recursion allowed),
// nullable. Annotations (title, description, default, examples, format, ...) are ignored.
// Keywords that would constrain values in ways not enforced here (pattern, minimum, maximum,
// multipleOf, not, if, ...) are refused with InvalidArgument naming the keyword and its path.
// Whitespace between tokens is allowed, at most kMaxWhitespace bytes at each place (a model
// looping on newlines cannot run away).
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "structured/grammar.h"

namespace turbine::structured {

inline constexpr int kMaxWhitespace = 24;

Result<std::shared_ptr<const Grammar>> compileJsonSchema(const nlohmann::ordered_json& schema);

// The output is exactly one of `choices` (raw text, not JSON-quoted).
Result<std::shared_ptr<const Grammar>> compileChoice(const std::vector<std::string>& choices);

}  // namespace turbine::structured
