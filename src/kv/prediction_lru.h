// PredictionLru: the router's live predictions "(block hash, worker slot) was routed there at
// time t", as an LRU with a TTL, without heap allocation per operation in steady state.
//
// Layout: one open-addressing table of 16-byte entries keyed by (hash, worker) (linear probing
// from line-aligned homes, backward-shift deletion, load <= 0.5) holding each live key's
// last-touch time, and a FIFO of touch records in time order (chunks of 4,096, recycled: it grows a
// chunk at a time, nothing copied). A touch appends a record; records whose key was touched again, erased or
// expired since are stale and skipped, so expiry pops from the front in O(1) amortized. When
// stale records outnumber the live ones a compaction pass starts: 4 records examined per touch
// (in batches of 64, their lookups in flight together), live ones moved down, the rest dropped
// when the pass reaches the end (one pass over 8M records at once stalled a touch 320 ms).
//
// Growth never moves the whole table at once (a doubling at 2M keys, with the ring's, took
// 150-300 ms on the benchmark's guest, most of it first-touching the new memory): the doubled
// table is mapped and faulted in by a helper thread while inserts continue in the old one (up to
// 5/8 full); then the old table moves over a cluster at a time, a few slots per touch or erase.
// While it does, a key whose home in the old table has not moved yet is looked up there first;
// new keys go to the new table, so the old one only empties.
//
// Thread safety: not thread-safe (PrefixIndex's owner serializes access).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "kv/block_hash.h"
#include "kv/huge_page_allocator.h"

namespace turbine::kv {

// A FIFO of trivially copyable T in chunks of 4,096 that are recycled: no allocation per push in
// steady state and none ever copied (a std::deque allocated and freed a 504-byte block every 21
// records: malloc was 9% of an approximate-mode router's time). Indexable from the front.
template <class T>
class ChunkedQueue {
 public:
  static constexpr size_t kShift = 12, kChunk = size_t{1} << kShift;
  ChunkedQueue() = default;
  ChunkedQueue(const ChunkedQueue&) = delete;
  ChunkedQueue& operator=(const ChunkedQueue&) = delete;
  ~ChunkedQueue() {
    for (T* c : chunks_) delete[] c;
    for (T* c : spare_) delete[] c;
  }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& operator[](size_t i) {
    const size_t k = head_ + i;
    return chunks_[k >> kShift][k & (kChunk - 1)];
  }
  const T& front() const { return chunks_.front()[head_]; }
  void push_back(const T& v) {
    const size_t k = head_ + size_;
    if ((k >> kShift) == chunks_.size()) chunks_.push_back(takeChunk());
    chunks_[k >> kShift][k & (kChunk - 1)] = v;
    ++size_;
  }
  void pop_front() {
    --size_;
    if (++head_ == kChunk) {
      spare_.push_back(chunks_.front());
      chunks_.pop_front();
      head_ = 0;
    }
  }
  // Keeps the first n.
  void truncate(size_t n) {
    size_ = n;
    const size_t used = std::max<size_t>((head_ + n + kChunk - 1) >> kShift, 1);
    while (chunks_.size() > used) {
      spare_.push_back(chunks_.back());
      chunks_.pop_back();
    }
  }
  size_t memoryBytes() const { return (chunks_.size() + spare_.size()) * kChunk * sizeof(T); }

 private:
  T* takeChunk() {
    if (spare_.empty()) return new T[kChunk];
    T* c = spare_.back();
    spare_.pop_back();
    return c;
  }
  std::deque<T*> chunks_;  // pointers only: a block of them per 64 chunks
  std::vector<T*> spare_;
  size_t head_ = 0;  // in chunks_.front()
  size_t size_ = 0;
};

class PredictionLru {
 public:
  PredictionLru();
  ~PredictionLru();
  PredictionLru(const PredictionLru&) = delete;
  PredictionLru& operator=(const PredictionLru&) = delete;

  // Records a touch of (hash, worker) at now_us; true when the key was not live before. A live
  // key whose recorded touch is less than coalesce_us old is left as it is (no record: the
  // key then expires up to coalesce_us early, and the ring does not fill with stale records of
  // keys touched over and over).
  bool touch(BlockHash hash, uint32_t worker, int64_t now_us, int64_t coalesce_us = 0);
  // True when the key was live.
  bool erase(BlockHash hash, uint32_t worker);
  // Drops every live key of the worker (O(capacity)).
  void eraseWorker(uint32_t worker);
  bool contains(BlockHash hash, uint32_t worker) const { return find(hash, worker) != nullptr; }
  size_t size() const { return size_; }
  // Live keys of one worker.
  size_t liveOf(uint32_t worker) const { return worker < live_by_worker_.size() ? live_by_worker_[worker] : 0; }
  // A hint: the key's home entry will be needed soon.
  void prefetch(BlockHash hash, uint32_t worker) const {
    __builtin_prefetch(&table_[home(hash, worker, shift_)], 1);
  }
  // For tests: slots of the current table, and whether an old one is still being moved from.
  size_t tableSlots() const { return table_.size(); }
  bool growing() const { return old_.data() != nullptr; }

  // Pops live keys, oldest touch first, while the oldest is older than ttl_us at now_us or more
  // than `cap` are live; calls drop(hash, worker) for each popped key.
  template <class Drop>
  void expire(int64_t now_us, int64_t ttl_us, size_t cap, Drop&& drop) {
    while (!ring_.empty()) {
      const Record r = ring_.front();
      // Records are in time order: when the front one is within the TTL, so is every live key's
      // last touch (checked before the lookup, which is a cache miss on most calls).
      if (now_us - r.touch_us <= ttl_us && size_ <= cap) return;
      const Entry* e = find(r.hash, r.worker);
      ring_.pop_front();
      if (scan_ > 0) {  // the compaction's positions count from the front
        --scan_;
        if (keep_ > 0) --keep_;
      }
      if (e == nullptr || e->stamp != stamp(r.touch_us)) continue;  // stale record
      erase(r.hash, r.worker);
      drop(r.hash, r.worker);
    }
  }

  size_t memoryBytes() const;

 private:
  // 16 bytes, four to a 64-byte line; all zero bits when empty (a fresh mapping is an empty
  // table). The last touch is kept as its low 32 bits (µs): records carry the full time, and a
  // record is current when its low bits match (two touches of one key exactly a multiple of
  // 2^32 µs, 71 minutes, apart would be taken for one).
  struct Entry {
    BlockHash hash = 0;
    uint32_t tag = 0;  // worker + 1; 0: empty
    uint32_t stamp = 0;
  };
  using Table = HugeArray<Entry>;
  static uint32_t stamp(int64_t touch_us) { return static_cast<uint32_t>(touch_us); }
  static uint32_t tagOf(uint32_t worker) { return worker + 1; }
  struct Record {
    int64_t touch_us;
    BlockHash hash;
    uint32_t worker;
  };

  // Homes are line starts (as in PrefixIndex), and the table is kept at most half full, so a
  // probe mostly stays in the one line that was prefetched.
  static size_t home(BlockHash h, uint32_t w, int shift) {
    return (((h ^ (uint64_t{w} * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull) >> shift) & ~size_t{3};
  }
  static Table makeTable(size_t slots);  // empty (zeroed)
  static Entry* probe(const Table& t, int shift, BlockHash h, uint32_t w);
  const Entry* find(BlockHash h, uint32_t w) const;
  Entry* find(BlockHash h, uint32_t w) {
    return const_cast<Entry*>(static_cast<const PredictionLru*>(this)->find(h, w));
  }
  // Whether old_'s slot `home` has moved to table_ (its whole cluster has).
  bool moved(size_t old_home) const { return ((old_home - move_start_) & (old_.size() - 1)) < moved_; }
  Entry* insertNew(BlockHash h, uint32_t w);
  void eraseAt(Table& t, int shift, size_t index);
  // Growth: the doubled table mapped (and faulted in by faulter_), then old_ moved to it.
  void prepareGrowth();
  void startMoving();
  void moveSome(size_t slots);
  void finishGrowth();
  // Drops stale records incrementally: while compacting_, records [0, keep_) of ring_ are
  // compacted (live when examined), [keep_, scan_) examined and no longer needed (stale, or a
  // copy of one moved below keep_: expiry finds them stale), [scan_, end) not examined yet.
  void compactSome(size_t records);

  Table table_;
  int shift_ = 64;
  size_t size_ = 0;
  std::vector<uint32_t> live_by_worker_;
  Table next_;  // the doubled table while faulter_ faults it in; inserts still go to table_
  // While growing(): the previous table; its clusters have moved circularly from move_start_
  // (an empty slot) for moved_ slots.
  Table old_;
  int old_shift_ = 64;
  size_t move_start_ = 0, moved_ = 0;
  Prefaulter faulter_;
  ChunkedQueue<Record> ring_;
  bool compacting_ = false;
  size_t keep_ = 0, scan_ = 0, credit_ = 0;
};

}  // namespace turbine::kv
