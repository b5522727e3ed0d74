#include "kv/prediction_lru.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace turbine::kv {

namespace {
constexpr size_t kInitialSlots = 1024;
// Slots of the old table moved per touch or erase while growing: it holds at most 5/8 of its
// slots, so the move ends within 1/8 of its size in operations, long before the new table (twice
// as large) is half full.
constexpr size_t kMoveSlots = 8;
// Ring records examined per touch while a compaction pass runs (3 more than the touch appends, so
// a pass catches up with the end), in batches of kCompactBatch.
constexpr size_t kCompactPerTouch = 4;
constexpr size_t kCompactBatch = 64;
}  // namespace

PredictionLru::PredictionLru() : table_(makeTable(kInitialSlots)), shift_(64 - std::countr_zero(kInitialSlots)) {}

PredictionLru::~PredictionLru() { faulter_.join(); }  // before next_ or table_ go

PredictionLru::Table PredictionLru::makeTable(size_t slots) {
  Table t(slots);
  // 2 MiB and more are a fresh mapping, zero already (faulted in where first written); smaller
  // tables come from reused memory.
  if (slots * sizeof(Entry) < kHugePageBytes) std::memset(static_cast<void*>(t.data()), 0, slots * sizeof(Entry));
  return t;
}

PredictionLru::Entry* PredictionLru::probe(const Table& t, int shift, BlockHash h, uint32_t w) {
  const size_t mask = t.size() - 1;
  const uint32_t tag = tagOf(w);
  for (size_t i = home(h, w, shift);; i = (i + 1) & mask) {
    const Entry& e = t[i];
    if (e.tag == 0) return nullptr;
    if (e.hash == h && e.tag == tag) return const_cast<Entry*>(&e);
  }
}

const PredictionLru::Entry* PredictionLru::find(BlockHash h, uint32_t w) const {
  if (old_.data() != nullptr) [[unlikely]] {
    if (!moved(home(h, w, old_shift_))) {
      if (const Entry* e = probe(old_, old_shift_, h, w)) return e;
    }
  }
  return probe(table_, shift_, h, w);
}

PredictionLru::Entry* PredictionLru::insertNew(BlockHash h, uint32_t w) {
  if (old_.data() != nullptr && (size_ + 1) * 2 > table_.size()) finishGrowth();  // not expected
  if (old_.data() == nullptr) {
    if (next_.data() == nullptr && (size_ + 1) * 2 > table_.size()) prepareGrowth();
    if (next_.data() != nullptr && (faulter_.done() || (size_ + 1) * 8 > table_.size() * 5)) startMoving();
  }
  const size_t mask = table_.size() - 1;
  size_t i = home(h, w, shift_);
  while (table_[i].tag != 0) i = (i + 1) & mask;
  Entry& e = table_[i];
  e.hash = h;
  e.tag = tagOf(w);
  ++size_;
  if (w >= live_by_worker_.size()) live_by_worker_.resize(w + 1, 0);
  ++live_by_worker_[w];
  return &e;
}

void PredictionLru::eraseAt(Table& t, int shift, size_t hole) {
  const size_t mask = t.size() - 1;
  --live_by_worker_[t[hole].tag - 1];
  t[hole] = Entry{};
  --size_;
  for (size_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
    Entry& cur = t[i];
    if (cur.tag == 0) return;
    const size_t want = home(cur.hash, cur.tag - 1, shift);
    if (((i - want) & mask) >= ((i - hole) & mask)) {
      t[hole] = cur;
      cur = Entry{};
      hole = i;
    }
  }
}

// At half load: the doubled table, faulted in on a thread of its own (this guest's 2 MiB page
// faults cost ~3 ms each: 64 of them for a table of 8M slots).
void PredictionLru::prepareGrowth() {
  next_ = makeTable(table_.size() * 2);
  if (next_.size() * sizeof(Entry) >= kHugePageBytes) faulter_.start(next_.data(), next_.size() * sizeof(Entry));
}

// The faulting is done (or the table is 5/8 full): the doubled table takes the inserts, and the
// old one moves over from an empty slot on, a cluster at a time. A cluster's entries have their
// homes in it (the slot before it is empty, and the old table gains no entries from now on), so
// whether a key has moved is whether its old home has.
void PredictionLru::startMoving() {
  old_ = std::move(table_);
  old_shift_ = shift_;
  table_ = std::move(next_);
  next_ = Table();
  shift_ -= 1;
  move_start_ = 0;
  while (old_[move_start_].tag != 0) ++move_start_;
  moved_ = 0;
}

void PredictionLru::moveSome(size_t slots) {
  const size_t cap = old_.size(), mask = cap - 1, new_mask = table_.size() - 1;
  while (slots > 0 && moved_ < cap) {
    const size_t p = (move_start_ + moved_) & mask;
    size_t len = 1;
    if (old_[p].tag != 0) {
      len = 0;
      for (size_t q = p; old_[q].tag != 0; q = (q + 1) & mask, ++len) {
        Entry& e = old_[q];
        size_t i = home(e.hash, e.tag - 1, shift_);
        while (table_[i].tag != 0) i = (i + 1) & new_mask;
        table_[i] = e;
        e = Entry{};
      }
    }
    moved_ += len;
    slots -= std::min(slots, len);
  }
  if (moved_ >= cap) old_ = Table();
}

void PredictionLru::finishGrowth() {
  if (old_.data() != nullptr) moveSome(old_.size());
}

bool PredictionLru::touch(BlockHash hash, uint32_t worker, int64_t now_us, int64_t coalesce_us) {
  if (old_.data() != nullptr) [[unlikely]] moveSome(kMoveSlots);
  Entry* e = find(hash, worker);
  // Ages by the low 32 bits (µs), modulo 2^32: exact for gaps under 71 minutes.
  if (e != nullptr && static_cast<int64_t>(static_cast<uint32_t>(stamp(now_us) - e->stamp)) < coalesce_us) return false;
  const bool inserted = e == nullptr;
  if (inserted) e = insertNew(hash, worker);
  e->stamp = stamp(now_us);
  ring_.push_back(Record{now_us, hash, worker});
  if (compacting_) {
    credit_ += kCompactPerTouch;
    if (credit_ >= kCompactBatch) {
      compactSome(credit_);
      credit_ = 0;
    }
  } else if (ring_.size() > 2 * size_ + 4096) {
    compacting_ = true;
    keep_ = scan_ = credit_ = 0;
  }
  return inserted;
}

bool PredictionLru::erase(BlockHash hash, uint32_t worker) {
  if (old_.data() != nullptr) [[unlikely]] moveSome(kMoveSlots);
  Entry* e = find(hash, worker);
  if (e == nullptr) return false;
  if (old_.data() != nullptr && e >= old_.data() && e < old_.data() + old_.size()) {
    eraseAt(old_, old_shift_, static_cast<size_t>(e - old_.data()));
  } else {
    eraseAt(table_, shift_, static_cast<size_t>(e - table_.data()));
  }
  return true;
}

void PredictionLru::eraseWorker(uint32_t worker) {
  const uint32_t tag = tagOf(worker);
  auto sweep = [&](Table& t, int shift) {
    for (size_t i = 0; i < t.size();) {
      if (t[i].tag != tag) {
        ++i;
        continue;
      }
      eraseAt(t, shift, i);  // a later entry may shift into i: look at i again
    }
  };
  if (old_.data() != nullptr) sweep(old_, old_shift_);
  sweep(table_, shift_);
}

void PredictionLru::compactSome(size_t records) {
  const size_t end = std::min(ring_.size(), scan_ + records);
  constexpr size_t kAhead = 16;  // the lookups are independent: keep 16 of them in flight
  for (size_t k = scan_; k < std::min(end, scan_ + kAhead); ++k) prefetch(ring_[k].hash, ring_[k].worker);
  for (; scan_ < end; ++scan_) {
    if (scan_ + kAhead < end) prefetch(ring_[scan_ + kAhead].hash, ring_[scan_ + kAhead].worker);
    const Record r = ring_[scan_];
    const Entry* e = find(r.hash, r.worker);
    if (e != nullptr && e->stamp == stamp(r.touch_us)) ring_[keep_++] = r;
  }
  if (scan_ == ring_.size()) {  // caught up with the appends: the pass is done
    ring_.truncate(keep_);
    compacting_ = false;
    keep_ = scan_ = 0;
  }
}

size_t PredictionLru::memoryBytes() const {
  return (table_.size() + old_.size() + next_.size()) * sizeof(Entry) + ring_.memoryBytes() +
         live_by_worker_.capacity() * sizeof(uint32_t);
}

}  // namespace turbine::kv
