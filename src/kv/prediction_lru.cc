#include "kv/prediction_lru.h"

#include <algorithm>
#include <bit>

namespace turbine::kv {

namespace {
constexpr size_t kInitialSlots = 1024;
constexpr size_t kInitialRing = 1024;
}  // namespace

PredictionLru::PredictionLru() {
  table_.assign(kInitialSlots, Entry{});
  shift_ = 64 - std::countr_zero(kInitialSlots);
  ring_.resize(kInitialRing);
}

const PredictionLru::Entry* PredictionLru::find(BlockHash h, uint32_t w) const {
  const size_t mask = table_.size() - 1;
  for (size_t i = home(h, w);; i = (i + 1) & mask) {
    const Entry& e = table_[i];
    if (e.worker == kEmpty) return nullptr;
    if (e.hash == h && e.worker == w) return &e;
  }
}

PredictionLru::Entry* PredictionLru::findOrInsert(BlockHash h, uint32_t w, bool& inserted) {
  if ((size_ + 1) * 2 > table_.size()) grow();
  const size_t mask = table_.size() - 1;
  for (size_t i = home(h, w);; i = (i + 1) & mask) {
    Entry& e = table_[i];
    if (e.worker == kEmpty) {
      e.hash = h;
      e.worker = w;
      ++size_;
      if (w >= live_by_worker_.size()) live_by_worker_.resize(w + 1, 0);
      ++live_by_worker_[w];
      inserted = true;
      return &e;
    }
    if (e.hash == h && e.worker == w) {
      inserted = false;
      return &e;
    }
  }
}

void PredictionLru::eraseAt(size_t hole) {
  const size_t mask = table_.size() - 1;
  --live_by_worker_[table_[hole].worker];
  table_[hole] = Entry{};
  --size_;
  for (size_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
    Entry& cur = table_[i];
    if (cur.worker == kEmpty) return;
    const size_t want = home(cur.hash, cur.worker);
    if (((i - want) & mask) >= ((i - hole) & mask)) {
      table_[hole] = cur;
      cur = Entry{};
      hole = i;
    }
  }
}

void PredictionLru::grow() {
  std::vector<Entry, HugePageAllocator<Entry>> old;
  old.swap(table_);
  table_.assign(old.size() * 2, Entry{});
  shift_ -= 1;
  const size_t mask = table_.size() - 1;
  for (const Entry& e : old) {
    if (e.worker == kEmpty) continue;
    size_t i = home(e.hash, e.worker);
    while (table_[i].worker != kEmpty) i = (i + 1) & mask;
    table_[i] = e;
  }
}

bool PredictionLru::touch(BlockHash hash, uint32_t worker, int64_t now_us) {
  bool inserted = false;
  Entry* e = findOrInsert(hash, worker, inserted);
  e->stamp = stamp(now_us);
  pushBack(Record{now_us, hash, worker});
  if (ring_count_ > 2 * size_ + 4096) compactRing();
  return inserted;
}

bool PredictionLru::erase(BlockHash hash, uint32_t worker) {
  const Entry* e = find(hash, worker);
  if (e == nullptr) return false;
  eraseAt(static_cast<size_t>(e - table_.data()));
  return true;
}

void PredictionLru::eraseWorker(uint32_t worker) {
  for (size_t i = 0; i < table_.size();) {
    if (table_[i].worker != worker) {
      ++i;
      continue;
    }
    eraseAt(i);  // a later entry may shift into i: look at i again
  }
}

void PredictionLru::pushBack(const Record& r) {
  if (ring_count_ == ring_.size()) {
    std::vector<Record, HugePageAllocator<Record>> bigger(ring_.size() * 2);
    for (size_t k = 0; k < ring_count_; ++k) bigger[k] = ring_[(ring_head_ + k) & (ring_.size() - 1)];
    ring_.swap(bigger);
    ring_head_ = 0;
  }
  ring_[(ring_head_ + ring_count_) & (ring_.size() - 1)] = r;
  ++ring_count_;
}

void PredictionLru::popFront() {
  ring_head_ = (ring_head_ + 1) & (ring_.size() - 1);
  --ring_count_;
}

void PredictionLru::compactRing() {
  size_t kept = 0;
  const size_t mask = ring_.size() - 1;
  constexpr size_t kAhead = 16;  // the lookups are independent: keep 16 of them in flight
  for (size_t k = 0; k < std::min(ring_count_, kAhead); ++k) {
    const Record& r = ring_[(ring_head_ + k) & mask];
    prefetch(r.hash, r.worker);
  }
  for (size_t k = 0; k < ring_count_; ++k) {
    if (k + kAhead < ring_count_) {
      const Record& ahead = ring_[(ring_head_ + k + kAhead) & mask];
      prefetch(ahead.hash, ahead.worker);
    }
    const Record r = ring_[(ring_head_ + k) & mask];
    const Entry* e = find(r.hash, r.worker);
    if (e != nullptr && e->stamp == stamp(r.touch_us)) ring_[(ring_head_ + kept++) & mask] = r;
  }
  ring_count_ = kept;
}

size_t PredictionLru::memoryBytes() const {
  return table_.capacity() * sizeof(Entry) + ring_.capacity() * sizeof(Record) +
         live_by_worker_.capacity() * sizeof(uint32_t);
}

}  // namespace turbine::kv
