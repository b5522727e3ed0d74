// Helpers shared by the whole-model benchmarks: the medium (or any preset) model files they run
// on, generated once (seed 1) into a cache folder and reused; comma-separated flag lists; prompts
// and greedy requests, and a request's time to first token.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
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

// `n` token ids in [256, vocab - 44), a xorshift stream per salt (past the byte tokens).
inline std::vector<int32_t> randomPrompt(int32_t n, int32_t vocab, uint32_t salt) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint32_t x = 2463534242u ^ salt;
  for (auto& id : ids) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    id = static_cast<int32_t>(x % static_cast<uint32_t>(vocab - 300)) + 256;
  }
  return ids;
}

// Exactly max_tokens greedy tokens (EOS ignored).
inline engine::Request greedyRequest(std::string id, std::vector<int32_t> tokens, int32_t max_tokens) {
  engine::Request r;
  r.request_id = std::move(id);
  r.token_ids = std::move(tokens);
  r.sampling.temperature = 0;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

struct FirstToken {
  double seconds = 0;         // from add() to the first output token
  int32_t cached_tokens = 0;  // the usage's
};

// `request` on `e`, run to its end: the time to its first output token and its cached tokens.
inline Result<FirstToken> firstToken(engine::Engine& e, engine::Request request) {
  FirstToken out;
  const auto t0 = std::chrono::steady_clock::now();
  TURBINE_ASSIGN_OR_RETURN(auto stream, e.addStream(std::move(request)));
  while (auto o = stream->next()) {
    TURBINE_RETURN_IF_ERROR(o->status);
    if (out.seconds == 0 && !o->token_ids.empty())
      out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o->usage) out.cached_tokens = o->usage->cached_tokens;
  }
  return out;
}

// One greedy token of `tokens` on `e`, run to its end.
inline Result<FirstToken> firstToken(engine::Engine& e, const std::string& id, std::vector<int32_t> tokens) {
  return firstToken(e, greedyRequest(id, std::move(tokens), 1));
}

// Parses the benchmarks' "--flag value" pairs: each flag's setter gets its value. False, after
// printing `usage`, on an unknown flag, a flag without a value, or a value its setter throws on
// (std::stoi's errors).
using FlagSetters = std::map<std::string, std::function<void(const std::string&)>>;
inline bool parseFlags(int argc, char** argv, const FlagSetters& flags, const char* usage) {
  for (int i = 1; i < argc; i += 2) {
    const auto it = flags.find(argv[i]);
    bool ok = it != flags.end() && i + 1 < argc;
    if (ok) {
      try {
        it->second(argv[i + 1]);
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) {
      std::fprintf(stderr, "usage: %s\n", usage);
      return false;
    }
  }
  return true;
}

// <build>/models, next to the benchmark binaries' folder.
inline std::string defaultModelsDir() {
  namespace fs = std::filesystem;
  return (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "models").string();
}

}  // namespace turbine::bench_util
