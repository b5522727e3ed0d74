#include "kv/prediction_log.h"

namespace turbine::kv {

namespace {
constexpr size_t kInitialRecords = 1024;
constexpr size_t kInitialHashes = 16384;
}  // namespace

template <class T>
void PredictionLog::Ring<T>::push(const T& v) {
  if (count == items.size()) {  // full: double, oldest first at 0
    std::vector<T, HugePageAllocator<T>> bigger(items.size() * 2);
    for (size_t k = 0; k < count; ++k) bigger[k] = at(k);
    items.swap(bigger);
    head = 0;
  }
  items[(head + count) & (items.size() - 1)] = v;
  ++count;
}

PredictionLog::PredictionLog() {
  records_.items.resize(kInitialRecords);
  hashes_.items.resize(kInitialHashes);
}

void PredictionLog::append(int64_t now_us, uint32_t worker, std::span<const BlockHash> hashes) {
  if (hashes.empty()) return;
  records_.push(Record{now_us, worker, static_cast<uint32_t>(hashes.size())});
  for (BlockHash h : hashes) hashes_.push(h);
}

void PredictionLog::popFront() {
  hashes_.pop(records_.front().count);
  records_.pop(1);
}

void PredictionLog::forgetWorker(uint32_t worker) {
  for (size_t k = 0; k < records_.count; ++k) {
    if (records_.at(k).worker == worker) records_.at(k).worker = kNoWorker;
  }
}

size_t PredictionLog::memoryBytes() const {
  return records_.items.capacity() * sizeof(Record) + hashes_.items.capacity() * sizeof(BlockHash);
}

}  // namespace turbine::kv
