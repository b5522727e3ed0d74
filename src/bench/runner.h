// runBench: drives one workload against an OpenAI-compatible HTTP/1.1 server and measures every
// request client-side from the bytes of its SSE stream.
// One Asio event loop on the calling thread runs everything: one C++20 coroutine per request,
// a keep-alive connection pool (one connection per in-flight request, reused afterwards; a stale
// pooled connection is retried once on a fresh one), a dispatcher that honours the workload's
// arrival times, the concurrency cap and the duration. A failed request is recorded, never fatal;
// only an unreachable server (checked before the first request) fails the run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_types.h"
#include "bench/prompt.h"
#include "bench/workload.h"
#include "common/http_url.h"
#include "common/status.h"

namespace turbine::bench {

using Url = HttpUrl;
// "http://host[:port][/prefix]"; https is not supported (InvalidArgument).
Result<Url> parseUrl(const std::string& url);

struct RunProgress {
  int64_t started = 0;
  int64_t finished = 0;
  int64_t failed = 0;
  int64_t total = -1;  // the workload's total; -1 unbounded
  int32_t in_flight = 0;
  int64_t output_tokens = 0;
  double elapsed_s = 0.0;
};

struct RunnerOptions {
  std::string url;                 // base URL of the server
  Endpoint endpoint = Endpoint::kCompletions;
  std::string api_key;             // sent as "Authorization: Bearer <key>" when non-empty
  int32_t max_concurrency = 0;     // cap on in-flight requests; 0 = no cap
  double duration_s = 0.0;         // stop issuing after this long; 0 = until the workload ends
  double timeout_s = 600.0;        // per request, from send to end of stream
  double connect_timeout_s = 10.0;
  std::function<void(const RunProgress&)> progress;  // called on the loop thread
  double progress_interval_s = 0.25;
};

struct RunOutput {
  std::vector<RequestResult> results;  // in completion order
  double duration_s = 0.0;             // first send to last completion
  double loop_cpu_s = 0.0;             // CPU time of the event-loop thread during the run
  int32_t max_in_flight = 0;
  int64_t connections_opened = 0;
  // How late a 5 ms probe timer on the event loop fired (ms): the client's own queueing delay.
  // A p99 of a few ms means the loop kept up; more means client-side timings are inflated.
  double loop_lag_p50_ms = 0.0, loop_lag_p99_ms = 0.0, loop_lag_max_ms = 0.0;
};

// The path of the endpoint under base_path, e.g. "/v1/chat/completions".
std::string endpointPath(const Url& url, Endpoint endpoint);

Result<RunOutput> runBench(const RunnerOptions& options, Workload& workload,
                           const PromptRenderer& renderer);

// Raises the soft open-file limit to the hard limit (1,000 streams need 1,000 sockets).
void raiseOpenFileLimit();

}  // namespace turbine::bench
