// OpenAiServer: the OpenAI-compatible HTTP API over a ServingBackend.
//   GET  /v1/models            model cards
//   POST /v1/chat/completions  chat (template -> tokens -> backend), JSON or SSE
//   POST /v1/completions       text or token prompts, JSON or SSE
//   POST /tokenize             {"prompt"} or {"messages"} -> {"count","max_model_len","tokens"}
//   POST /detokenize           {"tokens"} -> {"prompt"}
//   GET  /health               200 when the backend is healthy, else 503
//   GET  /metrics              Prometheus text (FrontendMetrics + BackendStats)
// Unknown paths and models are 404, every error is the OpenAI error object (errors.h), and a
// client that disconnects mid-request has its sequences aborted on the backend at once.
// Thread safety: start()/shutdown() from one controlling thread; requests run on the I/O threads.
// The backend may keep sinks (and through them request state) past shutdown; the frontend never
// calls into the backend from them after shutdown() returns.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "frontend/backend.h"
#include "frontend/http_server.h"
#include "frontend/metrics.h"
#include "frontend/reasoning.h"
#include "frontend/tool_calls.h"

namespace turbine::frontend {

struct OpenAiServerOptions {
  HttpServerOptions http;                       // host, port, threads, limits, timeouts
  std::string api_key;                          // non-empty: /v1/*, /tokenize, /detokenize need
                                                // "Authorization: Bearer <api_key>" (else 401)
  int retry_after_s = 1;                        // Retry-After of 429 / 503 answers
  // Chat requests with tools and tool_choice "auto" have their output read for tool calls in
  // this format; without one such requests are refused (400), as vLLM refuses them.
  std::optional<ToolCallFormat> tool_call_format;
  // Chat output is split into reasoning_content and the answer in this format (vLLM's
  // --reasoning-parser).
  std::optional<ReasoningFormat> reasoning_format;
  std::chrono::milliseconds shutdown_grace{10'000};  // in-flight requests get this long
};

class OpenAiServer {
 public:
  OpenAiServer(OpenAiServerOptions options, std::shared_ptr<ServingBackend> backend);
  ~OpenAiServer();

  Status start();
  uint16_t port() const { return http_->port(); }
  // Stops accepting, lets in-flight requests finish up to shutdown_grace, aborts the rest.
  void shutdown();

  const FrontendMetrics& metrics() const { return metrics_; }
  int64_t activeRequests() const { return active_jobs_.load(); }

 private:
  class Handlers;

  OpenAiServerOptions options_;
  std::shared_ptr<ServingBackend> backend_;
  FrontendMetrics metrics_;
  std::atomic<int64_t> active_jobs_{0};
  std::unique_ptr<Handlers> handlers_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace turbine::frontend
