// KvBlockManager: the tiers below the device's KV pool (DESIGN.md §2, "KVBM: device → host →
// disk"). A block the engine evicts from its pool is offloaded here instead of being lost; a
// later request whose prefix is here gets its blocks copied back (onboarded) instead of
// recomputed.
//
//   host tier  `host_blocks` slots of block_bytes in one anonymous mapping (2 MiB pages)
//   disk tier  `disk_blocks` slots of block_bytes in one file under `disk_dir`, created at start
//              and unlinked at once (nothing is left behind, whatever way the process ends)
//
// Each tier is an LRU keyed by block hash (DESIGN.md §3.1). A block leaving the device goes to
// the host tier; a block the host tier evicts is demoted to the disk tier (written, unless it is
// there already); a block the last tier evicts is dropped. Without a host tier, blocks leaving the
// device go straight to disk. The tiers are inclusive: onboarding copies a block back and keeps it
// where it was, so a block the device evicts again costs nothing to offload; a block onboarded
// from disk is also promoted into the host tier (it is hot again). The host tier's pages are
// faulted in by a thread of its own from the start (fresh memory costs ~3 ms per 2 MiB page on a
// VM, which would otherwise land on the first offloads, in some request's time to first token). Every change is a KV
// event with its tier (`stored` / `removed`, host or disk; takeEvents()), so the router can count
// these blocks as cached on this worker (weighted below the device's, kv::PrefixIndex).
//
// Copies in and out go through caller callbacks, so the manager knows nothing of where the
// device's memory is (the CPU runner memcpys; a CUDA runner would issue its copies there).
// Disk I/O is synchronous pread / pwrite (through the page cache) on the caller's thread.
// Thread safety: not thread-safe; owned by the engine's step loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/anonymous_memory.h"
#include "common/status.h"
#include "kv/block_hash.h"
#include "kv/huge_page_allocator.h"
#include "kv/kv_events.h"

namespace turbine::kv {

struct KvBlockManagerOptions {
  // Bytes of one block, all layers. 0: a metadata-only manager (the simulated engine's): slots,
  // LRU order and events, no memory, and the copy callbacks are never called (no disk tier).
  size_t block_bytes = 0;
  int64_t host_blocks = 0;   // host tier slots; 0: no host tier
  int64_t disk_blocks = 0;   // disk tier slots; 0: no disk tier
  std::string disk_dir;      // folder for the disk tier's file (must exist with disk_blocks > 0)
};

// Counters since construction, and the tiers' occupancy now.
struct KvBlockManagerStats {
  int64_t host_capacity = 0, host_used = 0;  // blocks
  int64_t disk_capacity = 0, disk_used = 0;
  int64_t offloaded = 0;       // blocks copied off the device (to host, or to disk without host)
  int64_t offload_hits = 0;    // blocks leaving the device that a tier already held (no copy)
  int64_t demoted = 0;         // blocks written from the host tier to the disk tier
  int64_t promoted = 0;        // blocks read from disk and kept in the host tier too
  int64_t onboarded_host = 0;  // blocks copied back to the device from each tier
  int64_t onboarded_disk = 0;
  int64_t dropped = 0;         // blocks evicted from the last tier holding them (or lost to an
                               // I/O error on their way down)
  int64_t io_errors = 0;       // failed disk reads / writes (the block is then treated as absent)
  int64_t exported = 0;        // blocks copied out for another engine (exportBlock)
};

class KvBlockManager {
 public:
  // Writes a block's bytes (block_bytes) to `dst` / reads them from `src`.
  using CopyOut = std::function<Status(void* dst)>;
  using CopyIn = std::function<Status(const void* src)>;

  // InvalidArgument when no tier is given (or a disk tier without a block size); ResourceExhausted when the host tier
  // cannot be mapped; IoError naming the folder when the disk tier's file cannot be created or
  // sized.
  static Result<std::unique_ptr<KvBlockManager>> create(const KvBlockManagerOptions& options);
  ~KvBlockManager();
  KvBlockManager(const KvBlockManager&) = delete;
  KvBlockManager& operator=(const KvBlockManager&) = delete;

  // A block leaving the device: stored on the first tier (host, else disk), `copy` filling the
  // slot. A block that tier already holds is only marked recently used. On an error (the copy or
  // the disk write failed) nothing is stored and the error is returned: the block is just lost,
  // as without tiers.
  Status offload(BlockHash hash, std::optional<BlockHash> parent, const CopyOut& copy);

  // The fastest tier holding `hash` (kHost or kDisk), or nullopt.
  std::optional<Tier> find(BlockHash hash) const;
  // Marks `hash` recently used on the tiers holding it (before onboarding a run of blocks, so
  // making room for the first cannot evict the next).
  void touch(BlockHash hash);
  // Copies the block back (from its fastest tier) through `copy`, keeping it where it was (and
  // promoting a disk block into the host tier). NotFound when no tier holds it; IoError when the disk read fails (the block is then dropped
  // from the disk tier).
  Status onboard(BlockHash hash, const CopyIn& copy);
  // Copies the block (from its fastest tier) through `copy` for another engine (disaggregated
  // serving); nothing moves between tiers. NotFound / IoError as onboard().
  Status exportBlock(BlockHash hash, const CopyIn& copy);

  // Forgets every block without events (the engine's `cleared` event covers every tier).
  void clear();

  // Events since the last call, oldest first (tiers host and disk only).
  std::vector<KvEvent> takeEvents();
  KvBlockManagerStats stats() const;
  size_t blockBytes() const { return options_.block_bytes; }

 private:
  // One tier's slots: hash -> slot, and an LRU list threaded through the slots.
  class Slots {
   public:
    explicit Slots(int64_t capacity);
    int64_t capacity() const { return static_cast<int64_t>(meta_.size()); }
    int64_t used() const { return static_cast<int64_t>(by_hash_.size()); }
    std::optional<int64_t> find(BlockHash hash) const;
    void touch(int64_t slot);           // to the most recently used end
    std::optional<int64_t> takeFree();  // a free slot, or nullopt when full
    void giveBack(int64_t slot);        // a slot from takeFree() left unused
    int64_t leastRecent() const;        // used() > 0
    void insert(int64_t slot, BlockHash hash, std::optional<BlockHash> parent);  // as MRU
    void erase(int64_t slot);           // back to the free list
    void clear();
    BlockHash hash(int64_t slot) const { return meta_[slot].hash; }
    std::optional<BlockHash> parent(int64_t slot) const;

   private:
    struct Meta {
      BlockHash hash = 0;
      BlockHash parent = 0;
      bool has_parent = false;
      int64_t prev = -1, next = -1;  // LRU neighbours (prev = less recent)
    };
    void unlink(int64_t slot);
    void linkMostRecent(int64_t slot);
    std::vector<Meta> meta_;
    std::vector<int64_t> free_;
    std::unordered_map<BlockHash, int64_t> by_hash_;
    int64_t lru_ = -1, mru_ = -1;
  };

  KvBlockManager(const KvBlockManagerOptions& options, AnonymousMemory host, int disk_fd);
  uint8_t* hostSlot(int64_t slot) { return host_mem_.data() + slot * options_.block_bytes; }
  bool hasData() const { return options_.block_bytes > 0; }
  // A free host slot, evicting (demoting) the least recently used block when full.
  int64_t makeHostRoom();
  // Puts `data` into a host slot as `hash` (MRU), with its event.
  void storeOnHost(BlockHash hash, std::optional<BlockHash> parent, const void* data);
  // Stores `data` on the disk tier (a block leaving the host, or the device without host).
  Status storeOnDisk(BlockHash hash, std::optional<BlockHash> parent, const void* data);
  // Reads the block from its fastest tier into `copy`: host touched, disk read into staging_.
  // *from_disk says which.
  Status readBlock(BlockHash hash, const CopyIn& copy, bool* from_disk);
  template <typename Io>
  Status diskIo(int64_t slot, uint8_t* data, const char* what, Io io);
  Status diskWrite(int64_t slot, const void* data);
  Status diskRead(int64_t slot, void* data);
  void emitStored(Tier tier, BlockHash hash, std::optional<BlockHash> parent);
  void emitRemoved(Tier tier, BlockHash hash);

  KvBlockManagerOptions options_;
  AnonymousMemory host_mem_;
  Prefaulter host_prefault_;  // declared after host_mem_: stops before the memory goes
  Slots host_;
  Slots disk_;
  int disk_fd_ = -1;
  std::vector<uint8_t> staging_;  // one block, for disk reads and direct-to-disk offloads
  std::vector<KvEvent> events_;
  KvBlockManagerStats stats_;
};

}  // namespace turbine::kv
