// BlockPool hands out the ids of the fixed-size KV blocks that the ModelRunner owns, counts
// their references, and keeps the prefix cache: block hash -> block.
//
// Each block is in exactly one state:
//   free         ref 0, no hash; on the free list
//   cached-free  ref 0, holds a hash; kept for reuse until its memory is needed
//   used         ref > 0 (with or without a hash)
// allocate() takes free blocks first, then evicts cached-free blocks, least recently released
// LEAF first (a block none of whose children in the hash chain is cached), so a cached chain is
// trimmed from its tail. Every block that becomes cached emits `stored`, every eviction
// `removed`, resetPrefixCache() `cleared` (DESIGN.md §3.2); takeEvents() drains them in order.
// A hash maps to at most one block: commit() of a hash already cached returns the cached block
// (the caller swaps it into its table) so the chain invariant "a cached block's parent is cached"
// holds and cached-free blocks can always be evicted.
// An eviction listener (the KV block manager's offload) sees each evicted block while its data
// is still intact, before its `removed` event; events of other tiers are spliced into the same
// ordered stream with appendEvents().
//
// Thread safety: not thread-safe; owned by the engine's step loop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/batch.h"
#include "kv/block_hash.h"
#include "kv/kv_events.h"

namespace turbine::engine {

class BlockPool {
 public:
  // Called for a cached-free block about to be evicted: its id, hash and chain parent's hash.
  using EvictionListener =
      std::function<void(BlockId block, kv::BlockHash hash, std::optional<kv::BlockHash> parent)>;

  // Block ids are [0, num_blocks). With caching off, commit() is a no-op and nothing is emitted.
  BlockPool(int32_t num_blocks, bool enable_caching);

  int32_t numBlocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t numFree() const { return static_cast<int32_t>(free_.size()); }
  int32_t numCachedFree() const { return num_cached_free_; }
  int32_t numUsed() const { return numBlocks() - numFree() - numCachedFree(); }
  // Blocks allocate() can hand out now: free + cached-free.
  int32_t numAvailable() const { return numFree() + numCachedFree(); }
  bool cachingEnabled() const { return caching_; }

  // Appends n blocks (ref 1 each) to `out`, evicting cached-free blocks as needed. Returns false
  // and changes nothing when fewer than n are available: a normal outcome (wait or preempt).
  bool allocate(int32_t n, std::vector<BlockId>& out);

  // Drops one reference from each block, in the order given; a block reaching 0 becomes free or
  // cached-free. Release a sequence's blocks tail first so its tail is evicted first.
  void release(std::span<const BlockId> blocks);

  // The cached block holding `hash`, if any (used or cached-free).
  std::optional<BlockId> lookup(kv::BlockHash hash) const;
  // Adds a reference to a block (a prefix-cache hit); a cached-free block becomes used.
  void acquire(BlockId block);

  // Registers `block` (used by the caller, fully computed) as holding `hash`, whose chain parent
  // is `parent` (nullopt for a first block). If `hash` is already cached in another block, the
  // caller's reference moves to that block and `block` is released; the block to keep in the
  // caller's table is returned.
  BlockId commit(BlockId block, kv::BlockHash hash, std::optional<kv::BlockHash> parent);

  // Forgets every hash (used blocks keep their data but can no longer be hit); emits cleared.
  void resetPrefixCache();

  void setEvictionListener(EvictionListener listener) { on_evict_ = std::move(listener); }

  // Events emitted since the last call, oldest first.
  std::vector<kv::KvEvent> takeEvents();
  // Appends events of other tiers (the KV block manager's) to the stream, in order.
  void appendEvents(std::vector<kv::KvEvent> events);

  // For tests and stats.
  int32_t refCount(BlockId block) const { return blocks_[block].ref; }
  std::vector<kv::BlockHash> cachedHashes() const;
  // Internal: every invariant above; a message naming the first that fails.
  Status checkInvariants() const;

 private:
  struct Meta {
    int32_t ref = 0;
    bool has_hash = false;
    kv::BlockHash hash = 0;
    std::optional<kv::BlockHash> parent_hash;  // the chain parent named at commit
    BlockId parent = -1;       // cached parent block linked at commit, or -1
    int32_t num_children = 0;  // cached blocks whose parent is this one
    uint64_t tick = 0;         // when it last became cached-free (LRU order)
  };

  void evictOne();
  void dropHash(BlockId b);
  void emitStored(kv::BlockHash hash, std::optional<kv::BlockHash> parent);
  void emitRemoved(kv::BlockHash hash);
  void markEvictableIfLeaf(BlockId b);

  bool caching_;
  std::vector<Meta> blocks_;
  std::vector<BlockId> free_;
  int32_t num_cached_free_ = 0;
  std::set<std::pair<uint64_t, BlockId>> evictable_;  // cached-free leaves by (tick, id)
  std::unordered_map<kv::BlockHash, BlockId> by_hash_;
  uint64_t clock_ = 0;
  std::vector<kv::KvEvent> events_;
  EvictionListener on_evict_;
};

}  // namespace turbine::engine
