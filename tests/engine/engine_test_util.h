// Helpers shared by the engine's whole-engine tests: run a request to its end, an engine over a
// FakeRunner (KV tiers optional), and the tiny model's weights (generated into a temporary
// folder, loaded, the folder removed).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/fake_runner.h"
#include "engine/llama_model.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine::testing {

struct RunResult {
  std::vector<int32_t> tokens;
  Usage usage;
  Status status;
};

// Every chunk of `r` on `e`, until its end: its tokens, its final usage and status.
inline RunResult run(Engine& e, const Request& r) {
  auto s = e.addStream(r);
  EXPECT_TRUE(s.isOk()) << s.status().toString();
  RunResult out;
  if (!s.isOk()) return out;
  while (auto o = (*s)->next()) {
    out.tokens.insert(out.tokens.end(), o->token_ids.begin(), o->token_ids.end());
    if (o->finished()) {
      if (o->usage) out.usage = *o->usage;
      out.status = o->status;
    }
  }
  return out;
}

// An engine (model id "fake", 64 tokens per step) over a FakeRunner of `blocks` blocks of
// `block_size` tokens, `vocab` ids and 256 positions; the runner stays reachable through
// `runner`, and `events` (when given) receives its KV event messages.
inline std::unique_ptr<Engine> fakeEngine(int32_t vocab, int32_t block_size, int32_t blocks, KvTierOptions tiers,
                                          FakeRunner** runner, std::vector<kv::KvEventMessage>* events = nullptr) {
  auto r = std::make_unique<FakeRunner>(vocab, block_size, blocks, 256);
  *runner = r.get();
  EngineOptions o;
  o.model_id = "fake";
  o.max_num_batched_tokens = 64;
  o.kv_tiers = std::move(tiers);
  auto e = Engine::create(std::move(r), o);
  EXPECT_TRUE(e.isOk()) << e.status().toString();
  if (!e.isOk()) return nullptr;
  if (events) (*e)->subscribeKvEvents([events](const kv::KvEventMessage& m) { events->push_back(m); });
  return std::move(e).value();
}

// The tiny preset (HF, f32) with this seed; null (and a test failure) when it cannot be made.
inline std::shared_ptr<const model::ModelWeights> tinyWeights(uint64_t seed, const std::string& tag) {
  const std::string dir = std::string(TURBINE_BINARY_DIR) + "/tmp/" + tag + "_" + std::to_string(::getpid());
  model::MakeModelOptions mo;
  mo.preset = "tiny";
  mo.format = "hf";
  mo.dtype = "f32";
  mo.seed = seed;
  mo.out = dir;
  mo.tokenizer_corpus_bytes = 256 << 10;
  const Status made = model::makeModel(mo);
  EXPECT_TRUE(made.isOk()) << made.toString();
  auto w = model::loadModel(dir);
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(w.isOk()) << w.status().toString();
  if (!made.isOk() || !w.isOk()) return nullptr;
  return std::make_shared<const model::ModelWeights>(std::move(w).value());
}

// An engine over the tiny model's weights; null (and a test failure) when it cannot be made.
inline std::unique_ptr<Engine> tinyEngine(const std::shared_ptr<const model::ModelWeights>& weights,
                                          const LlamaModelOptions& lo, EngineOptions eo) {
  auto m = LlamaModel::create(weights, lo);
  EXPECT_TRUE(m.isOk()) << m.status().toString();
  if (!m.isOk()) return nullptr;
  if (eo.model_id.empty()) eo.model_id = "tiny";
  auto e = Engine::create(std::move(m).value(), eo);
  EXPECT_TRUE(e.isOk()) << e.status().toString();
  if (!e.isOk()) return nullptr;
  return std::move(e).value();
}

}  // namespace turbine::engine::testing
