// Test doubles shared by the backend tests: a request-plane worker scripted by hand and a tiny
// model's real tokenizer (made once per test program).
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/make_model.h"
#include "model/tokenizer.h"
#include "runtime/request_plane.h"

namespace turbine::frontend {

// A worker whose chunks the test sends by hand.
class ScriptedWorker : public runtime::WorkerClient {
 public:
  Status generate(runtime::GenerateRequest request, runtime::ChunkCallback cb) override {
    std::lock_guard<std::mutex> lock(mu);
    if (!refuse.isOk()) return refuse;
    sinks[request.request_id] = std::move(cb);
    received.push_back(std::move(request));
    return Status::ok();
  }
  void abort(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu);
    aborted.push_back(id);
  }
  Status health() override { return Status::ok(); }
  void send(const std::string& id, runtime::GenerateChunk c) {
    runtime::ChunkCallback cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      cb = sinks.at(id);
    }
    cb(std::move(c));
  }

  std::mutex mu;
  Status refuse;
  std::map<std::string, runtime::ChunkCallback> sinks;
  std::vector<runtime::GenerateRequest> received;
  std::vector<std::string> aborted;
};

// A tiny model's tokenizer, made once for the whole test program.
inline std::shared_ptr<const model::Tokenizer> tinyTokenizer() {
  static std::shared_ptr<const model::Tokenizer> tok = [] {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("turbine-engine-backend-test-" + std::to_string(::getpid()));
    model::MakeModelOptions o;
    o.preset = "tiny";
    o.out = dir.string();
    o.tokenizer_corpus_bytes = 1 << 16;
    Status st = model::makeModel(o);
    EXPECT_TRUE(st.isOk()) << st.toString();
    auto t = model::Tokenizer::load(dir.string());
    fs::remove_all(dir);
    EXPECT_TRUE(t.isOk()) << t.status().toString();
    return std::shared_ptr<const model::Tokenizer>(std::move(t).value());
  }();
  return tok;
}

}  // namespace turbine::frontend
