// UpstreamClient: the request plane's worker side (runtime::WorkerClient) for an engine that
// Turbine does not run itself: vLLM, SGLang (its native API), or any OpenAI-compatible server
// that returns token ids (another `turbine serve`), reached over HTTP/1.1. With it, such engines sit behind a Turbine frontend
// and its KV-aware router (`turbine worker --engine upstream`, docs/fleet.md); their KV events
// reach the router straight from the engine (vLLM's publisher: runtime::parseEventEndpoint's
// `format=vllm`).
//
// Each generate() is one streamed POST {url}/v1/completions whose prompt is the request's token
// ids, with `return_token_ids` (vLLM's extension, v0.10.2 and later: each streamed choice carries
// the ids of its new tokens) and `stream_options.include_usage`; the sampling and stop options
// map to the OpenAI fields and vLLM's extensions (top_k, min_p, repetition_penalty,
// stop_token_ids, ignore_eos, min_tokens, cache_salt). max_tokens, when the request leaves it
// unset, is what fits in max_model_len (vLLM's completions default to 16). An upstream that
// answers without token ids fails the request with a message saying so. Logprobs are not
// forwarded (InvalidArgument).
// With api = kSglang it is SGLang's native POST {url}/generate instead ({input_ids,
// sampling_params, stream}; SGLang's OpenAI server returns no token ids): the new tokens of each
// event are the last meta_info.completion_tokens - (tokens so far) of output_ids (cumulative or
// incremental, as the SGLang version streams them), the finish reason and usage come from
// meta_info, an engine-side abort is an error with its message; cache_salt is refused (SGLang
// has none: the engine would share the tenants' cache).
//
// Chunks: one per streamed event with new token ids; the final one (finish reason, usage with
// prompt_tokens_details.cached_tokens) once the stream ends. A non-200 answer, a cut stream or an
// in-stream error object ends the request with kError and the upstream's message: Unavailable
// when the engine cannot serve (unreachable, 502-504, a cut or malformed stream, no token ids),
// which the frontend answers by migrating the request and suspending the worker; Internal for an
// in-stream error or a 500, InvalidArgument for other 4xx, ResourceExhausted for 429. abort()
// closes the connection (vLLM aborts a request whose client went away) and ends it with kAbort.
//
// load() is what the worker's load reports carry (`turbine worker --engine upstream` publishes
// them, with the engine's KV events relayed, on its own event endpoint).
//
// Threads: one I/O thread runs every request (C++20 coroutines on Boost.Asio); chunk callbacks
// run on it. Thread safety: every public method is thread-safe. shutdown() (and the destructor)
// ends every request in flight with kAbort and joins the thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "runtime/request_plane.h"

namespace turbine::worker {

// The upstream's API: vLLM's OpenAI-compatible /v1/completions with `return_token_ids`, or
// SGLang's native /generate (its OpenAI server returns no token ids).
enum class UpstreamApi { kOpenAI, kSglang };

struct UpstreamOptions {
  std::string url;                  // http://HOST[:PORT][/PREFIX] (a trailing /v1 is dropped)
  std::string model;                // the `model` field sent upstream (OpenAI API)
  UpstreamApi api = UpstreamApi::kOpenAI;
  int32_t max_model_len = 0;        // > 0: sets max_tokens when a request leaves it unset
  int32_t max_in_flight = 256;      // requests at once; more are refused (ResourceExhausted)
  int32_t block_size = 16;          // the engine's KV block size, for load()
  double connect_timeout_s = 10.0;
  double response_timeout_s = 600.0;  // until the response header, and between reads
};

class UpstreamClient : public runtime::WorkerClient {
 public:
  // InvalidArgument on a bad URL or option. Nothing is contacted yet (see health()).
  static Result<std::shared_ptr<UpstreamClient>> create(UpstreamOptions options);
  ~UpstreamClient() override;

  Status generate(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk) override;
  void abort(const std::string& request_id) override;
  // GET {url}/health answered 200 within 5 s.
  Status health() override;
  // The text of GET {url}/metrics (the engine's Prometheus metrics; EngineMetricsPoller reads
  // them); NotFound when the engine serves none, Unavailable when it does not answer in 5 s.
  Result<std::string> metrics() const;
  void shutdown();

  // What this client has in flight upstream: its requests, and the KV blocks they hold on the
  // engine (each request's prompt and tokens so far, in blocks of block_size). The engine may
  // serve other clients too: this is the part of its load that came through this worker.
  struct Load {
    int32_t running = 0;
    int32_t kv_blocks_used = 0;
  };
  Load load() const;
  // Called (on the caller's or the I/O thread) when a request is admitted or finishes; set it
  // before the first generate().
  void setOnChange(std::function<void()> on_change);

  // The JSON body sent upstream for `request` (exposed for tests).
  static nlohmann::json requestBody(const runtime::GenerateRequest& request, const UpstreamOptions& options);

  struct Impl;

 private:
  // GET {url}{path}: the status and body (at most 8 MiB), within 5 s.
  Result<std::pair<unsigned, std::string>> get(const std::string& path) const;
  explicit UpstreamClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace turbine::worker
