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
// Two rings of fixed capacity (records, and their hashes in order), mapped on first use on 2 MiB
// pages and never moved or grown: the owner drops the oldest records when an append would not
// fit (fits()). No allocation, copy or page fault per decision once the rings have wrapped.
//
// Thread safety: not thread-safe (PrefixIndex's owner serializes access).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kv/block_hash.h"

namespace turbine::kv {

class PredictionLog {
 public:
  static constexpr uint32_t kNoWorker = 0xFFFFFFFFu;  // a record whose worker left
  struct Record {
    int64_t time_us = 0;
    uint32_t worker = kNoWorker;
    uint32_t count = 0;  // its hashes: the next `count` of the hash ring
  };

  // Room for at least `max_hashes` hashes (rounded up to a power of two, at least 2^16) and a
  // quarter as many records.
  explicit PredictionLog(size_t max_hashes);
  ~PredictionLog();
  PredictionLog(const PredictionLog&) = delete;
  PredictionLog& operator=(const PredictionLog&) = delete;

  size_t maxHashes() const { return hash_cap_; }
  // Whether `records` records of n hashes in all can be appended now.
  bool fits(size_t n, size_t records = 1) const {
    return hashes_ + n <= hash_cap_ && records_ + records <= record_cap_;
  }
  // Appends a record (nothing when `hashes` is empty); fits(hashes.size()) must hold.
  void append(int64_t now_us, uint32_t worker, std::span<const BlockHash> hashes);
  bool empty() const { return records_ == 0; }
  size_t records() const { return records_; }
  size_t hashes() const { return hashes_; }
  // The oldest record and its k-th hash.
  const Record& front() const { return record_ring_[record_head_]; }
  BlockHash frontHash(size_t k) const { return hash_ring_[(hash_head_ + k) & (hash_cap_ - 1)]; }
  void popFront();
  // The worker's records are kept but name no worker (its slot may be recycled).
  void forgetWorker(uint32_t worker);
  // Bytes of the rings touched so far (their mappings are reserved in full on first use).
  size_t memoryBytes() const;

 private:
  size_t hash_cap_ = 0, record_cap_ = 0;  // powers of two
  BlockHash* hash_ring_ = nullptr;
  Record* record_ring_ = nullptr;
  size_t hash_head_ = 0, hashes_ = 0;
  size_t record_head_ = 0, records_ = 0;
  size_t hashes_touched_ = 0, records_touched_ = 0;  // high-water marks of the rings
};

}  // namespace turbine::kv
