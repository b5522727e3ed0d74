// Internal to the model loaders (model_loader.cc, gguf_model_loader.cc): shared validation and
// the GGUF entry points. Not part of the public API.
#pragma once

#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/model_loader.h"

namespace turbine::model {

// Expected [out, in] shapes of every tensor role for a configuration.
struct ExpectedShapes {
  std::vector<int64_t> embed, norm, wq, wk, wv, wo, bq, bk, bv, gate, up, down;
};
ExpectedShapes expectedShapes(const ModelConfig& c);

std::string shapeToString(const std::vector<int64_t>& shape);
// "FILE: tensor 'NAME': shape [a,b], expected [c,d]" when they differ.
Status checkShape(const std::string& file, const TensorView& t,
                  const std::vector<int64_t>& expected);

Result<ModelConfig> ggufModelConfig(const GgufFile& f);
Result<ModelInfo> ggufModelInfo(const std::string& path);
Result<ModelWeights> loadGgufWeights(const std::string& path);

}  // namespace turbine::model
