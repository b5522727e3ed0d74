#include "structured/constraint.h"

#include <nlohmann/json.hpp>

#include "structured/grammar_text.h"
#include "structured/json_schema.h"
#include "structured/regex.h"

namespace turbine::structured {

const char* kindName(OutputConstraint::Kind kind) {
  switch (kind) {
    case OutputConstraint::Kind::kJsonSchema: return "json_schema";
    case OutputConstraint::Kind::kChoice: return "choice";
    case OutputConstraint::Kind::kRegex: return "regex";
    case OutputConstraint::Kind::kGrammar: return "grammar";
  }
  return "unknown";
}

std::optional<OutputConstraint::Kind> kindFromName(std::string_view name) {
  using Kind = OutputConstraint::Kind;
  for (Kind k : {Kind::kJsonSchema, Kind::kChoice, Kind::kRegex, Kind::kGrammar}) {
    if (name == kindName(k)) return k;
  }
  return std::nullopt;
}

Result<std::shared_ptr<const Grammar>> compileConstraint(const OutputConstraint& c) {
  using Json = nlohmann::ordered_json;
  switch (c.kind) {
    case OutputConstraint::Kind::kJsonSchema: {
      Json schema = Json::parse(c.spec, nullptr, /*allow_exceptions=*/false);
      if (schema.is_discarded()) return invalidArgument("the JSON schema is not valid JSON");
      return compileJsonSchema(schema);
    }
    case OutputConstraint::Kind::kChoice: {
      Json list = Json::parse(c.spec, nullptr, /*allow_exceptions=*/false);
      std::vector<std::string> choices;
      if (list.is_array()) {
        for (const Json& x : list) {
          if (!x.is_string()) return invalidArgument("guided_choice must be a list of strings");
          choices.push_back(x.get<std::string>());
        }
      } else {
        return invalidArgument("guided_choice must be a list of strings");
      }
      return compileChoice(choices);
    }
    case OutputConstraint::Kind::kRegex: return compileRegex(c.spec);
    case OutputConstraint::Kind::kGrammar: return compileGrammarText(c.spec);
  }
  return invalidArgument("unknown output constraint kind");
}

}  // namespace turbine::structured
