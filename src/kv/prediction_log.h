// PredictionLog: the router's predictions when KV events confirm them, one record per routing
// decision ("these blocks were predicted on this worker at time t"), oldest first.
//
// With KV events a prediction only bridges the time until the chosen worker's stored events
// arrive (milliseconds), and its TTL is a safety net for events that never come. So a prediction
// needs no last-touch time of its own (PredictionLru, which approximate mode needs): a decision's
// new predictions are appended as one record (a time, a worker, its hashes), and the owner drops
// a record's predictions when the record is older than the TTL. A prediction that a later
// decision makes again is not extended: it goes with the first record that made it (early, never
// late). A record whose blocks were confirmed meanwhile costs a lookup that finds nothing to drop.
//
// Two rings (records, and their hashes in order) on 2 MiB pages, grown by doubling; no heap
// allocation per decision in steady state.
//
// Thread safety: not thread-safe (PrefixIndex's owner serializes access).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kv/block_hash.h"
#include "kv/huge_page_allocator.h"

namespace turbine::kv {

class PredictionLog {
 public:
  static constexpr uint32_t kNoWorker = 0xFFFFFFFFu;  // a record whose worker left
  struct Record {
    int64_t time_us = 0;
    uint32_t worker = kNoWorker;
    uint32_t count = 0;  // its hashes: the next `count` of the hash ring
  };

  PredictionLog();

  // Appends a record (nothing when `hashes` is empty).
  void append(int64_t now_us, uint32_t worker, std::span<const BlockHash> hashes);
  bool empty() const { return records_.count == 0; }
  size_t records() const { return records_.count; }
  size_t hashes() const { return hashes_.count; }
  // The oldest record and its k-th hash.
  const Record& front() const { return records_.front(); }
  BlockHash frontHash(size_t k) const { return hashes_.at(k); }
  void popFront();
  // The worker's records are kept but name no worker (its slot may be recycled).
  void forgetWorker(uint32_t worker);
  size_t memoryBytes() const;

 private:
  template <class T>
  struct Ring {
    std::vector<T, HugePageAllocator<T>> items;  // size a power of two
    size_t head = 0;
    size_t count = 0;
    const T& front() const { return items[head]; }
    const T& at(size_t k) const { return items[(head + k) & (items.size() - 1)]; }
    T& at(size_t k) { return items[(head + k) & (items.size() - 1)]; }
    void push(const T& v);
    void pop(size_t n) {
      head = (head + n) & (items.size() - 1);
      count -= n;
    }
  };
  Ring<Record> records_;
  Ring<BlockHash> hashes_;
};

}  // namespace turbine::kv
