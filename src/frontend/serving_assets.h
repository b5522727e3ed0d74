// ServingAssets: what a frontend needs of a model to serve it without its weights — the model's
// metadata, tokenizer and chat template (DESIGN.md §4 step 1). `turbine serve` loads them next to
// the weights; `turbine frontend` loads them from the model path its workers register.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "model/chat_template.h"
#include "model/model_loader.h"
#include "model/tokenizer.h"

namespace turbine::frontend {

struct ServingAssets {
  model::ModelInfo info;
  std::shared_ptr<const model::Tokenizer> tokenizer;
  std::shared_ptr<const model::ChatTemplate> chat_template;  // null when the model has none
};

// Reads a HF folder or .gguf file's metadata, tokenizer and chat template; the error names the
// file and what is wrong (a model without a tokenizer cannot be served).
Result<ServingAssets> loadServingAssets(const std::string& path);

}  // namespace turbine::frontend
