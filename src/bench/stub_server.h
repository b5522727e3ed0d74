// StubServer: a minimal OpenAI-compatible HTTP/1.1 server for tests and for measuring the bench
// client's own overhead. It listens on 127.0.0.1 (port 0 = any free port) and serves
//  - POST /v1/completions, /v1/chat/completions: streams exactly max_tokens tokens as SSE, the
//    first after ttft_ms and then one every itl_ms (on a fixed schedule from the request's arrival,
//    so the client's measured timings can be compared with it), then a usage chunk
//    (prompt, completion and cached tokens) and `data: [DONE]`;
//  - POST /tokenize: a fake tokenizer (one token per whitespace-separated word, no BOS), answering
//    {"tokens": [...], "count": N} like vLLM / Turbine;
//  - every `fail_every`-th generation request is answered 500 with an OpenAI error object.
// Prompt tokens: the array length (token-id prompts) or the word count (text; chat adds 3 per
// message). Cached tokens: leading 16-token blocks of the prompt already seen in earlier requests.
// Thread safety: start/stop from one thread; stats() and prompts() may be called at any time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::bench {

struct StubServerOptions {
  double ttft_ms = 20.0;
  double itl_ms = 5.0;
  int32_t fail_every = 0;      // 0: never fail
  int32_t threads = 1;         // event-loop threads of the server
  bool record_prompts = false; // keep every prompt's token ids (see prompts())
};

struct StubStats {
  int64_t generate_requests = 0;
  int64_t tokenize_requests = 0;
  int64_t failed_on_purpose = 0;
  int64_t tokens_sent = 0;
  int64_t connections = 0;
  int64_t max_concurrent_streams = 0;
  // How late token writes started against their schedule (the stub's own lag), ms.
  double send_lag_mean_ms = 0.0;
  double send_lag_max_ms = 0.0;
};

class StubServer {
 public:
  static Result<std::unique_ptr<StubServer>> start(const StubServerOptions& options);
  ~StubServer();
  StubServer(const StubServer&) = delete;
  StubServer& operator=(const StubServer&) = delete;

  uint16_t port() const;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  StubStats stats() const;
  // The token ids of every generation request's prompt, in arrival order (record_prompts only).
  std::vector<std::vector<int32_t>> prompts() const;
  void stop();

  // The fake tokenizer's id for a word.
  static int32_t wordId(const std::string& word);

  struct Impl;

 private:
  explicit StubServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace turbine::bench
