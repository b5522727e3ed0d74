// Router: picks the worker that serves a request (DESIGN.md §4 step 2). Policies: round-robin,
// random, least-loaded, kv (KV-cache-aware). Every policy sees the same inputs: workers joining
// and leaving (discovery), KV events and load metrics (event plane), and each request's block
// hashes (computed by the frontend, DESIGN.md §3.1); a policy ignores what it does not use.
// Thread safety: implementations are safe to call from any thread (the frontend's I/O threads
// route while the event plane delivers events).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kv/block_hash.h"
#include "kv/kv_events.h"
#include "kv/load_metrics.h"

namespace turbine::router {

using kv::WorkerId;

struct WorkerInfo {
  WorkerId id = 0;
  std::string model_id;
  std::string role = "agg";
  int32_t block_size = 16;
  int32_t kv_blocks_total = 0;
};

struct RouteRequest {
  std::string request_id;
  std::string model_id;
  std::span<const kv::BlockHash> block_hashes;  // the prompt's full blocks, chained
  int32_t prompt_tokens = 0;
};

struct RouteDecision {
  WorkerId worker = 0;
  int32_t overlap_blocks = 0;  // the router's prediction of the prompt blocks cached there
};

class Router {
 public:
  virtual ~Router() = default;
  virtual void addWorker(const WorkerInfo& worker) = 0;
  virtual void removeWorker(WorkerId worker) = 0;
  virtual void onKvEvents(const kv::KvEventMessage& msg) = 0;
  virtual void onLoad(const kv::LoadMetrics& load) = 0;
  // Unavailable when no worker serves request.model_id.
  virtual Result<RouteDecision> route(const RouteRequest& request) = 0;
  // The request routed with `request_id` finished (or failed): release what route() counted.
  virtual void onRequestFinished(const std::string& request_id) = 0;
};

// Default weight of one uncached prompt block against one active block (the kv policy's cost).
// 8, not 1: an uncached block is a block of prefill compute, an active block a share of a decode
// step, and with weight 1 a difference of a few cached blocks loses to any load difference, so
// conversations drift away from their cache. Measured with `turbine simulate` (docs/router.md):
// on the Mooncake conversation trace (16 workers x 1,024 blocks) the hit ratio is 98% of the
// pooled LRU oracle's at the trace's rate (84% with 1), TTFT p50 at round-robin's knee 394 vs
// 563 ms; on the synthetic traces of tests/mocker/simulator_test.cc it is at least as good as 1
// on every seed (guarded there). Much larger weights pile new conversations onto the holder of a
// shared system prompt (1000: hit ratio below round-robin's on those traces).
inline constexpr double kDefaultOverlapWeight = 8.0;

struct RouterOptions {
  std::string policy = "least-loaded";  // round-robin | random | least-loaded | kv
  uint64_t seed = 0;                    // random choices and ties
  // kv policy (issue 5): cost(w) = overlap_weight * (prompt blocks not cached on w) + active blocks on w
  double overlap_weight = kDefaultOverlapWeight;
  double temperature = 0.0;             // 0: pick the minimum; > 0: softmax over -cost / T
  bool use_kv_events = true;            // false: approximate mode, learn from own decisions
  // kv policy: workers over a threshold are skipped (<= 0: off); see KvRouterOptions.
  double busy_kv_fraction = 0.0;        // active blocks / the worker's KV blocks
  int64_t busy_prefill_tokens = 0;      // prompt tokens routed there whose prefill is not done
  double queued_prefill_weight = 0.0;   // > 0 adds queued prefill blocks to the cost (Dynamo-like)
  // kv policy: distinct block hashes to size the prefix index for at start (0: it grows as needed;
  // a doubling moves the table a page at a time, at most ~1 ms in one call at 10M blocks).
  size_t index_blocks = 0;
};

// InvalidArgument naming the policy when unknown; Unimplemented for "kv" in a build without the
// KV-aware router (see hasKvRouter()).
Result<std::unique_ptr<Router>> makeRouter(const RouterOptions& options);

// True when this build has the kv policy (then the default of `turbine serve`).
bool hasKvRouter();

}  // namespace turbine::router
