// Request traces for the simulator (read by bench/trace_reader.h: Mooncake JSON Lines, whose
// hash_ids name the prompt's 512-token prefix blocks, an equal id meaning an equal prefix up to
// that block, or Azure CSV, which has lengths only) and the bounds on a fleet's prefix hit ratio
// for a trace:
//   infinite-cache ideal: replay in order with a cache that never evicts; a request's hit
//     blocks are its leading run of already-seen ids;
//   pooled oracle: the same with ONE LRU cache as large as the whole fleet's (workers x blocks
//     per worker), each request touching its blocks tail first so its prefix is the most recent.
//     This is what a perfectly pooled fleet with LRU would get; it is NOT a strict bound: on
//     cyclic reuse, partitioned caches (sticky routing) can beat one pooled LRU.
//   pooled optimal (Belady's MIN over every block access, total hits): a strict upper bound
//     for any routing over the same total capacity (the union of the workers' caches is one
//     demand-paged cache of that size, and MIN maximizes hits).
// Ratios are hit blocks / all blocks (every hash_id counts as one block).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/trace_reader.h"
#include "common/status.h"

namespace turbine::mocker {

using TraceRequest = bench::TraceRecord;

// Rows without hash_ids (Azure traces: no prefix information) get ceil(input_length / block_size)
// ids of their own, used by no other row: every prompt distinct, nothing shared.
void giveDistinctBlocks(std::vector<TraceRequest>& trace, int32_t block_size);

struct HitBounds {
  int64_t total_blocks = 0;
  int64_t infinite_hit_blocks = 0;
  int64_t pooled_hit_blocks = 0;
  int64_t optimal_hit_blocks = 0;
  double infiniteRatio() const { return total_blocks ? double(infinite_hit_blocks) / total_blocks : 0; }
  double pooledRatio() const { return total_blocks ? double(pooled_hit_blocks) / total_blocks : 0; }
  double optimalRatio() const { return total_blocks ? double(optimal_hit_blocks) / total_blocks : 0; }
};

HitBounds computeHitBounds(const std::vector<TraceRequest>& trace, int64_t pooled_capacity_blocks);

}  // namespace turbine::mocker
