// Helpers shared by the whole-model benchmarks: the medium (or any preset) model files they run
// on, generated once (seed 1) into a cache folder and reused; comma-separated flag lists.
#pragma once

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/make_model.h"

namespace turbine::bench_util {

// <models>/<preset>-<dtype> (an HF folder), or <models>/<preset>-q8_0.gguf for q8_0.
inline Result<std::string> ensureModel(const std::string& models, const std::string& preset,
                                       const std::string& dtype) {
  namespace fs = std::filesystem;
  const bool gguf = dtype == "q8_0";
  const fs::path path = fs::path(models) / (preset + "-" + dtype + (gguf ? ".gguf" : ""));
  if (fs::exists(gguf ? path : path / "config.json")) return path.string();
  std::fprintf(stderr, "generating %s ...\n", path.c_str());
  fs::create_directories(models);
  model::MakeModelOptions o;
  o.preset = preset;
  o.format = gguf ? "gguf" : "hf";
  o.dtype = dtype;
  o.seed = 1;
  o.out = path.string();
  TURBINE_RETURN_IF_ERROR(model::makeModel(o));
  return path.string();
}

inline std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// <build>/models, next to the benchmark binaries' folder.
inline std::string defaultModelsDir() {
  namespace fs = std::filesystem;
  return (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "models").string();
}

}  // namespace turbine::bench_util
