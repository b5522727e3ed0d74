#include "kv/prediction_log.h"

#include <algorithm>
#include <bit>

#include "kv/huge_page_allocator.h"

namespace turbine::kv {

// Ring storage is a mapping of its own on 2 MiB pages (allocateHugePages), touched only as the
// ring fills, so a router that never predicts this way, or predicts little, pays nothing for it.

PredictionLog::PredictionLog(size_t max_hashes)
    : hash_cap_(std::bit_ceil(std::max<size_t>(max_hashes, size_t{1} << 16))), record_cap_(hash_cap_ / 4) {}

PredictionLog::~PredictionLog() {
  if (hash_ring_ != nullptr) freeHugePages(hash_ring_, hugePageRounded(hash_cap_ * sizeof(BlockHash)));
  if (record_ring_ != nullptr) freeHugePages(record_ring_, hugePageRounded(record_cap_ * sizeof(Record)));
}

void PredictionLog::append(int64_t now_us, uint32_t worker, std::span<const BlockHash> hashes) {
  if (hashes.empty()) return;
  if (hash_ring_ == nullptr) {
    hash_ring_ = static_cast<BlockHash*>(allocateHugePages(hugePageRounded(hash_cap_ * sizeof(BlockHash))));
    record_ring_ = static_cast<Record*>(allocateHugePages(hugePageRounded(record_cap_ * sizeof(Record))));
  }
  const size_t r = (record_head_ + records_) & (record_cap_ - 1);
  record_ring_[r] = Record{now_us, worker, static_cast<uint32_t>(hashes.size())};
  ++records_;
  records_touched_ = std::max(records_touched_, r + 1);
  const size_t start = (hash_head_ + hashes_) & (hash_cap_ - 1);
  for (size_t k = 0; k < hashes.size(); ++k) hash_ring_[(start + k) & (hash_cap_ - 1)] = hashes[k];
  hashes_touched_ = std::max(hashes_touched_, std::min(hash_cap_, start + hashes.size()));  // wrapped: all
  hashes_ += hashes.size();
}

void PredictionLog::popFront() {
  hash_head_ = (hash_head_ + front().count) & (hash_cap_ - 1);
  hashes_ -= front().count;
  record_head_ = (record_head_ + 1) & (record_cap_ - 1);
  --records_;
}

void PredictionLog::forgetWorker(uint32_t worker) {
  for (size_t k = 0; k < records_; ++k) {
    Record& r = record_ring_[(record_head_ + k) & (record_cap_ - 1)];
    if (r.worker == worker) r.worker = kNoWorker;
  }
}

size_t PredictionLog::memoryBytes() const {
  return hashes_touched_ * sizeof(BlockHash) + records_touched_ * sizeof(Record);
}

}  // namespace turbine::kv
