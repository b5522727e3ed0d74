// PredictionLru: the router's live predictions "(block hash, worker slot) was routed there at
// time t", as an LRU with a TTL, without heap allocation per operation in steady state.
//
// Layout: one open-addressing table of 16-byte entries keyed by (hash, worker) (linear probing
// from line-aligned homes, backward-shift deletion, load <= 0.5) holding each live key's
// last-touch time, and a FIFO
// ring of touch records in time order. A touch appends a record; records whose key was touched
// again, erased or expired since are stale and skipped (and compacted away when they outnumber
// the live ones), so expiry pops from the front in O(1) amortized.
//
// Thread safety: not thread-safe (PrefixIndex's owner serializes access).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/block_hash.h"
#include "kv/huge_page_allocator.h"

namespace turbine::kv {

class PredictionLru {
 public:
  PredictionLru();

  // Records a touch of (hash, worker) at now_us; true when the key was not live before.
  bool touch(BlockHash hash, uint32_t worker, int64_t now_us);
  // True when the key was live.
  bool erase(BlockHash hash, uint32_t worker);
  // Drops every live key of the worker (O(capacity)).
  void eraseWorker(uint32_t worker);
  bool contains(BlockHash hash, uint32_t worker) const { return find(hash, worker) != nullptr; }
  size_t size() const { return size_; }
  // Live keys of one worker.
  size_t liveOf(uint32_t worker) const { return worker < live_by_worker_.size() ? live_by_worker_[worker] : 0; }
  // A hint: the key's home entry will be needed soon.
  void prefetch(BlockHash hash, uint32_t worker) const { __builtin_prefetch(&table_[home(hash, worker)], 1); }

  // Pops live keys, oldest touch first, while the oldest is older than ttl_us at now_us or more
  // than `cap` are live; calls drop(hash, worker) for each popped key.
  template <class Drop>
  void expire(int64_t now_us, int64_t ttl_us, size_t cap, Drop&& drop) {
    while (ring_count_ > 0) {
      const Record r = ring_[ring_head_];
      // Records are in time order: when the front one is within the TTL, so is every live key's
      // last touch (checked before the lookup, which is a cache miss on most calls).
      if (now_us - r.touch_us <= ttl_us && size_ <= cap) return;
      const Entry* e = find(r.hash, r.worker);
      if (e == nullptr || e->stamp != stamp(r.touch_us)) {  // stale record
        popFront();
        continue;
      }
      popFront();
      erase(r.hash, r.worker);
      drop(r.hash, r.worker);
    }
  }

  size_t memoryBytes() const;

 private:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  // 16 bytes, four to a 64-byte line. The last touch is kept as its low 32 bits (µs): records
  // carry the full time, and a record is current when its low bits match (two touches of one key
  // exactly a multiple of 2^32 µs, 71 minutes, apart would be taken for one).
  struct Entry {
    BlockHash hash = 0;
    uint32_t worker = kEmpty;
    uint32_t stamp = 0;
  };
  static uint32_t stamp(int64_t touch_us) { return static_cast<uint32_t>(touch_us); }
  struct Record {
    int64_t touch_us;
    BlockHash hash;
    uint32_t worker;
  };

  // Homes are line starts (as in PrefixIndex), and the table is kept at most half full, so a
  // probe mostly stays in the one line that was prefetched.
  size_t home(BlockHash h, uint32_t w) const {
    return (((h ^ (uint64_t{w} * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull) >> shift_) & ~size_t{3};
  }
  const Entry* find(BlockHash h, uint32_t w) const;
  Entry* findOrInsert(BlockHash h, uint32_t w, bool& inserted);
  void eraseAt(size_t index);
  void grow();
  void pushBack(const Record& r);
  void popFront();
  void compactRing();

  std::vector<Entry, HugePageAllocator<Entry>> table_;
  size_t size_ = 0;
  std::vector<uint32_t> live_by_worker_;
  int shift_ = 64;
  std::vector<Record, HugePageAllocator<Record>> ring_;  // capacity a power of two
  size_t ring_head_ = 0;
  size_t ring_count_ = 0;
};

}  // namespace turbine::kv
