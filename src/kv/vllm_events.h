// vLLM's KV events (vllm/distributed/kv_events.py) and their translation into Turbine's.
//
// Wire: ZeroMQ frames [topic, seq as 8-byte big-endian, MessagePack KVEventBatch] (the framing of
// Turbine's own event plane, runtime/zmq_codec.h). The batch is msgspec's array_like layout with
// events tagged by class name: [ts, [event...], data_parallel_rank?], each event
//   ["BlockStored", block_hashes, parent_block_hash|nil, token_ids, block_size, lora_id|nil, medium?...]
//   ["BlockRemoved", block_hashes, medium?...]
//   ["AllBlocksCleared"]
// Trailing fields left at their defaults may be absent (omit_defaults); later fields that newer
// vLLM versions append are ignored. Block hashes are ints or (newer vLLM) bytes; bytes are folded
// to 64 bits with XXH3. medium: "GPU"/"cuda" -> device, "CPU" -> host, "DISK" -> disk, anything
// else or absent -> device.
//
// vLLM names blocks by its own hashes (SHA-256 or Python's hash of parent and tokens, salted by
// LoRA, multimodal inputs and cache_salt), which a router cannot compute from a request. The
// translator re-hashes each stored block from its token_ids with DESIGN.md §3.1's chain, so the
// index holds the hashes the router computes for requests, and keeps the vLLM -> Turbine map that
// later BlockRemoved events and children (by parent_block_hash) are resolved through.
// Thread safety: decodeVllmEventBatch is a pure function; a VllmBlockTranslator is not
// thread-safe (one per worker, on the thread that reads its events).
// Errors: DataLoss naming the field that is malformed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "kv/huge_page_allocator.h"
#include "kv/kv_events.h"

namespace turbine::kv {

// One decoded vLLM event, with its extra fields.
struct VllmEvent {
  KvEvent event;
  std::vector<int32_t> token_ids;  // BlockStored only
  int32_t block_size = 0;          // BlockStored only
  std::optional<int64_t> lora_id;  // BlockStored only
  std::string medium;              // as sent ("" when absent)
};

struct VllmEventBatch {
  double ts = 0;
  std::vector<VllmEvent> events;
  std::optional<int64_t> data_parallel_rank;
};

Result<VllmEventBatch> decodeVllmEventBatch(std::string_view payload);
// Re-hashes one worker's vLLM events into Turbine's (see the file comment).
//   - BlockStored: token_ids must hold block_size tokens per hash, and block_size must be a
//     multiple k of the worker's Turbine block size; each vLLM block becomes k Turbine blocks
//     chained from its parent's last one (the root for no parent). Dropped, with a count: an
//     event whose parent is unknown (stored before the router joined, or lost), whose sizes do
//     not fit, or with a LoRA adapter (its hashes are salted by the adapter, which the event
//     names only by number).
//   - Pages smaller than a Turbine block (block_size < the Turbine block size: SGLang's default
//     page size is 1 token) are merged: each page is kept with its tokens and its parent page,
//     and the page that holds the last token of a Turbine block completes it (its tokens read
//     back through the parents); that block is stored then, and removed when that page is.
//     (An engine evicts a chain from its leaves, so a block goes when its last page goes.)
//   - BlockRemoved: each known vLLM hash becomes its Turbine blocks; unknown ones are counted.
//     A hash stored on several tiers is kept until removed from all of them.
//   - AllBlocksCleared: forgets the map, and passes on.
class VllmBlockTranslator {
 public:
  struct Stats {
    uint64_t blocks_stored = 0;    // vLLM blocks translated
    uint64_t blocks_dropped = 0;   // vLLM blocks of events dropped (see above)
    uint64_t unknown_removed = 0;  // removed hashes the map did not hold
  };
  // `root`: rootHash(model_id, "") of the worker's model; `block_size`: Turbine's block size for
  // it (the worker record's), > 0.
  VllmBlockTranslator(BlockHash root, int32_t block_size);

  // The batch's events in Turbine's terms, in order; events that translate to nothing are left
  // out (the message may have none).
  KvEventMessage translate(const VllmEventBatch& batch, WorkerId worker, uint64_t seq);

  size_t size() const { return blocks_ + pages_.size(); }  // vLLM hashes held
  // The table's bytes, and the page map's (nodes, buckets, tokens; O(pages): for benchmarks).
  size_t memoryBytes() const;
  const Stats& stats() const { return stats_; }

 private:
  // The vLLM hash -> Turbine blocks map: an open-addressing table (linear probing, backward-shift
  // erase, doubled at 70% load) of 24-byte slots, one per Turbine block: a vLLM block of k
  // Turbine blocks has part j under key part(vllm_hash, j) (part 0 = the hash itself), so the
  // last part is its chain's tail. refs == 0 marks an empty slot.
  struct Slot {
    uint64_t key = 0;
    BlockHash block = 0;
    uint32_t refs = 0;  // tiers holding it
  };
  static uint64_t part(BlockHash vllm_hash, size_t j);
  Slot* find(uint64_t key);
  Slot& insert(uint64_t key);  // the slot of `key`, claimed (refs 0) when new
  void erase(Slot* slot);
  void grow();
  void clear();
  void prefetch(const std::vector<BlockHash>& vllm_hashes, size_t k, size_t expect_used);
  void store(const VllmEvent& e, const BlockStored& s, KvEventMessage& out);
  void storePages(const VllmEvent& e, const BlockStored& s, KvEventMessage& out);
  void remove(const BlockRemoved& r, KvEventMessage& out);
  // A page smaller than a Turbine block (see translate()).
  struct Page {
    BlockHash parent = 0;     // the parent page's vLLM hash (when has_parent)
    BlockHash tail = 0;       // the last whole Turbine block of the chain through this page
    BlockHash before = 0;     // when `completes`: the block before it (its parent), else root_
    std::vector<int32_t> tokens;
    uint32_t pending = 0;     // tokens of the chain after `tail` (< the Turbine block size)
    uint32_t refs = 0;        // tiers holding it
    bool has_parent = false;
    bool completes = false;   // this page holds the last token of block `tail`
  };

  BlockHash root_;
  int32_t block_size_;
  std::vector<Slot, HugePageAllocator<Slot>> slots_;  // size a power of two, or empty
  size_t used_ = 0;          // slots with refs > 0
  size_t blocks_ = 0;        // vLLM blocks held
  int32_t parts_ = 0;        // k of the blocks held (0: none yet); a change clears the map
  std::unordered_map<BlockHash, Page> pages_;  // pages smaller than a Turbine block
  Stats stats_;
};

}  // namespace turbine::kv
