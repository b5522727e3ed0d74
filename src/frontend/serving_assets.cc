#include "frontend/serving_assets.h"

#include <utility>

namespace turbine::frontend {

Result<ServingAssets> loadServingAssets(const std::string& path) {
  ServingAssets a;
  TURBINE_ASSIGN_OR_RETURN(a.info, model::loadModelInfo(path));
  TURBINE_ASSIGN_OR_RETURN(std::unique_ptr<model::Tokenizer> tok, model::Tokenizer::load(path));
  a.tokenizer = std::move(tok);
  if (!a.info.chat_template.empty()) {
    TURBINE_ASSIGN_OR_RETURN(model::ChatTemplate t, model::ChatTemplate::parse(a.info.chat_template));
    a.chat_template = std::make_shared<const model::ChatTemplate>(std::move(t));
  }
  return a;
}

}  // namespace turbine::frontend
