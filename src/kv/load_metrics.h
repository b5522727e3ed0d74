// Load metrics (DESIGN.md §3.3): what a worker reports about its load, every 100 ms or on change,
// to routers and planners.
#pragma once

#include <cstdint>
#include <string>

#include "kv/kv_events.h"

namespace turbine::kv {

struct LoadMetrics {
  WorkerId worker_id = 0;
  std::string role = "agg";          // "agg" | "prefill" | "decode"
  int32_t running = 0;               // sequences in the running batch
  int32_t waiting = 0;               // requests waiting for admission
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_used = 0;        // referenced by running sequences
  int32_t kv_blocks_cached_free = 0; // unreferenced, still holding a cached hash
  double tokens_per_s_prefill = 0;
  double tokens_per_s_decode = 0;
  int64_t ts_ms = 0;                 // worker wall clock, ms since the Unix epoch
  // Beyond DESIGN.md §3.3 (optional on the wire, 0 when absent): the KV tiers below the pool.
  int32_t kv_host_blocks_total = 0;
  int32_t kv_host_blocks_used = 0;
  int32_t kv_disk_blocks_total = 0;
  int32_t kv_disk_blocks_used = 0;
};

}  // namespace turbine::kv
