// PrefixIndex's table as its population changes (prefix_index.h has the design): a doubling
// moving the table a page at a time, a worker leaving swept in slices, a worker's entries
// cleared at once. Lookups, events, predictions and the overlap walk are in prefix_index.cc.
#include <algorithm>
#include <bit>

#include "kv/prefix_index.h"

namespace turbine::kv {

// ---- doubling ------------------------------------------------------------------------------

PrefixIndex::Slot* PrefixIndex::insertIntoOldPage(BlockHash h) {
  const size_t oa = (mix(h) >> old_shift_) & ~(kLineSlots - 1);
  const size_t page = oa / kPageSlots;
  if (moved(page)) return nullptr;
  if (Slot* s = placeWithoutWalk(old_.data(), h, oa, oa ^ lineOffset(h))) return s;
  movePage(page);
  return nullptr;
}

void PrefixIndex::noteQueryWhileGrowing() {
  inserts_since_move_ += 4;
  if (inserts_since_move_ >= kMoveEvery) {
    inserts_since_move_ = 0;
    moveSome(1);
  }
}

void PrefixIndex::moveOwnPage(BlockHash h) {
  const size_t page = ((mix(h) >> old_shift_) & ~(kLineSlots - 1)) / kPageSlots;
  if (!moved(page)) movePage(page);
}

void PrefixIndex::setTable(SlotTable t) {
  const size_t cap = t.size();
  table_ = std::move(t);
  shift_ = 64 - std::countr_zero(cap);
  line_mask_ = cap / kLineSlots - 1;
}

// Small tables, and a placement that fails while a doubling runs (a new page pair so full that
// no walk finds room: not seen in practice), rebuild at once.
void PrefixIndex::grow() {
  doubled_ = true;
  const size_t cap = table_.size() * 2;
  if (old_.data() != nullptr || table_.size() < kMovePagesMin) {
    rebuild(cap);
    return;
  }
  finishSweeps();  // a sweep's position is in this table
  SlotTable next = spare_.size() == cap ? std::move(spare_) : SlotTable(cap);
  spare_ = SlotTable();
  old_shift_ = shift_;
  const size_t pages = table_.size() / kPageSlots;
  old_ = std::move(table_);
  setTable(std::move(next));
  moved_.assign((pages + 63) / 64, 0);
  moved_pages_left_ = pages;
  move_cursor_ = 0;
}

// Old page p's hashes go to new pages 2p and 2p + 1 (one more bit of the same multiplicative
// hash), which are written here first. Each moved slot is cleared, so a slot found before the
// move no longer holds its hash.
void PrefixIndex::movePage(size_t old_page) {
  moved_[old_page / 64] |= uint64_t{1} << (old_page % 64);
  --moved_pages_left_;
  Slot* to = table_.data() + 2 * old_page * kPageSlots;
  std::fill(to, to + 2 * kPageSlots, Slot{});
  Slot* from = old_.data() + old_page * kPageSlots;
  for (size_t k = 0; k < kPageSlots; ++k) {
    if (isEmpty(from[k])) continue;
    Slot* s = place(from[k].hash);
    if (s == nullptr) [[unlikely]] {  // the rest stays where it is until rebuild() takes all
      rebuild(table_.size() * 2);
      return;
    }
    *s = from[k];
    from[k] = Slot{};
  }
}

void PrefixIndex::moveSome(size_t pages) {
  for (; pages > 0 && moved_pages_left_ > 0 && old_.data() != nullptr; --pages) {
    while (moved(move_cursor_)) ++move_cursor_;
    movePage(move_cursor_);
  }
  if (old_.data() != nullptr && moved_pages_left_ == 0) {
    old_ = SlotTable();
    moved_.clear();
    ++generation_;
  }
}

// A moved page's slots are all empty unless a failed placement stopped its move (rebuild()
// then takes what is left), so it is scanned too.
template <class Fn>
void PrefixIndex::forEachRange(Fn&& fn) {
  if (old_.data() == nullptr) {
    fn(table_.data(), table_.size());
    return;
  }
  for (size_t p = 0; p < old_.size() / kPageSlots; ++p) {
    fn(old_.data() + p * kPageSlots, kPageSlots);
    if (moved(p)) fn(table_.data() + 2 * p * kPageSlots, 2 * kPageSlots);
  }
}

// Every entry into a table of `capacity` slots (doubled again until all fit), at once.
void PrefixIndex::rebuild(size_t capacity) {
  std::vector<Slot> all;
  all.reserve(size_);
  forEachRange([&](const Slot* from, size_t n) {
    for (const Slot* s = from; s != from + n; ++s) {
      if (!isEmpty(*s)) all.push_back(*s);
    }
  });
  spare_faulter_.join();
  spare_ = SlotTable();
  old_ = SlotTable();
  moved_.clear();
  moved_pages_left_ = 0;
  ++generation_;
  for (bool placed = false; !placed; capacity *= 2) {
    SlotTable t(capacity);
    std::fill(t.data(), t.data() + capacity, Slot{});
    setTable(std::move(t));
    placed = true;
    for (const Slot& s : all) {
      Slot* to = place(s.hash);
      if (to == nullptr) {
        placed = false;
        break;
      }
      *to = s;
    }
  }
  sweep_pos_ = 0;  // released workers are swept again from the start of the new table
  for (Sweep& r : sweeping_) r.left = table_.size();
}

// At 65% load, the table a doubling will need: mapped now and pre-faulted by a thread of its own
// (MADV_POPULATE_WRITE, Linux 5.14+; elsewhere its pages fault as they are first written), so
// that the moves do not wait for this guest's 2 MiB page faults (~3 ms each). Only for a table
// that has doubled before: one sized up front (--router-index-blocks) is not expected to grow,
// and a spare would cost twice its memory.
void PrefixIndex::prepareSpare() {
  const size_t cap = table_.size() * 2;
  if (!doubled_ || old_.data() != nullptr || spare_.size() == cap || cap * sizeof(Slot) < kHugePageBytes) return;
  spare_faulter_.join();
  spare_ = SlotTable(cap);
  spare_faulter_.start(spare_.data(), hugePageRounded(cap * sizeof(Slot)));
}

// ---- workers leaving, caches cleared ------------------------------------------------------

// Lines requested kSweepAhead ahead (a slice starts cold: the scan is interrupted by the calls in
// between); empty slots and other workers' inline ones are passed over with one test. Slots with
// a holder set are cleared after the chunk's scan, their sets and then the targets' entries in
// them requested for all of them first: one by one, each cost two dependent misses (router_bench's
// sweep slices ~5 -> ~2 us; clearWorker with 1M three-holder hashes 200 -> 80 ms).
template <class IsTarget>
void PrefixIndex::clearSlots(Slot* from, size_t n, std::span<const WorkerSlot> targets, IsTarget&& is_target) {
  auto clearInline = [&](Slot& s) {
    const WorkerSlot w = s.holder >> kMaskBits;
    if (s.holder != 0 && is_target(w)) onMaskChange(w, clearBits(&s, w, kMaskAll), 0);  // may erase
  };
  for (size_t b = 0; b < n; b += kSweepSlots) {
    const size_t e = std::min(n, b + kSweepSlots);
    sweep_sets_.clear();
    for (size_t k = b; k < e; ++k) {
      if ((k & (kLineSlots - 1)) == 0) __builtin_prefetch(from + std::min(k + kSweepAhead * kLineSlots, n - 1));
      Slot& s = from[k];
      if (s.overflow == kNoOverflow) {
        clearInline(s);
      } else {
        prefetchSet(&s);
        sweep_sets_.push_back(&s);
      }
    }
    for (const Slot* s : sweep_sets_) {
      for (const WorkerSlot w : targets) prefetchEntry(s, w);
    }
    for (Slot* s : sweep_sets_) {
      for (const WorkerSlot w : targets) {
        if (s->overflow == kNoOverflow) {  // down to one holder: inline now
          clearInline(*s);
          break;
        }
        if (const uint32_t prev = clearBits(s, w, kMaskAll)) onMaskChange(w, prev, 0);
      }
    }
  }
}

void PrefixIndex::releaseWorker(WorkerId worker) {
  auto it = slots_.find(worker);
  if (it == slots_.end()) return;
  const WorkerSlot slot = it->second;
  slots_.erase(it);
  if (table_.size() < kSweepAfter) {
    clearWorker(slot);
    free_slots_.push_back(slot);
    return;
  }
  retire(slot);
}

// The slot's keys in predictions_ (approximate mode) are not searched for (a scan of that table:
// 20-40 ms at millions of predictions): they age out in their turn, and the slot waits for them
// before it is recycled (the sweep has already cleared their bits in the table).
void PrefixIndex::retire(WorkerSlot slot) {
  log_.forgetWorker(slot);
  if (retiring_bits_.size() * 64 < slot_ids_.size()) retiring_bits_.resize((slot_ids_.size() + 63) / 64, 0);
  retiring_bits_[slot / 64] |= uint64_t{1} << (slot % 64);
  if (sweeping_.empty()) sweep_pos_ = 0;
  sweeping_.push_back(Sweep{slot, table_.size()});
}

// The old slot's entries cannot be told from those the worker stores next without a generation
// per entry; under a fresh slot they need not be: the old one is swept like a released worker's.
WorkerSlot PrefixIndex::renewWorker(WorkerId worker) {
  auto it = slots_.find(worker);
  if (it == slots_.end()) return internWorker(worker);
  const WorkerSlot slot = it->second;
  if (table_.size() < kSweepAfter || sweeping_.size() >= kMaxSweeps) {
    clearWorker(slot);
    return slot;
  }
  slots_.erase(it);
  retire(slot);
  return internWorker(worker);  // not `slot`: it is recycled only after its sweep
}

// Slices are contiguous runs of the table from where the sweep stands (wrapping at its end).
void PrefixIndex::sweepSome(size_t n) {
  if (old_.data() != nullptr) return;  // after the doubling (which started with none running)
  const size_t cap = table_.size();
  n = std::min(n, cap);
  sweep_targets_.clear();
  for (const Sweep& r : sweeping_) sweep_targets_.push_back(r.slot);
  for (size_t done = 0; done < n;) {
    const size_t begin = sweep_pos_, end = std::min(cap, begin + (n - done));
    clearSlots(table_.data() + begin, end - begin, sweep_targets_, [this](WorkerSlot w) { return retiring(w); });
    done += end - begin;
    sweep_pos_ = end == cap ? 0 : end;
  }
  for (size_t i = 0; i < sweeping_.size();) {
    Sweep& r = sweeping_[i];
    r.left -= std::min(r.left, n);
    if (r.left > 0) {
      ++i;
      continue;
    }
    retiring_bits_[r.slot / 64] &= ~(uint64_t{1} << (r.slot % 64));
    if (predictions_.liveOf(r.slot) > 0) {
      aging_.push_back(r.slot);
    } else {
      free_slots_.push_back(r.slot);
    }
    r = sweeping_.back();
    sweeping_.pop_back();
  }
}

void PrefixIndex::recycleAged() {
  for (size_t i = 0; i < aging_.size();) {
    if (predictions_.liveOf(aging_[i]) > 0) {
      ++i;
      continue;
    }
    free_slots_.push_back(aging_[i]);
    aging_[i] = aging_.back();
    aging_.pop_back();
  }
}

void PrefixIndex::finishSweeps() {
  while (!sweeping_.empty()) sweepSome(table_.size());
}

// A scan of the whole table (an AllCleared event; a worker leaving a small table).
void PrefixIndex::clearWorker(WorkerSlot worker) {
  const WorkerSlot targets[] = {worker};
  forEachRange([&](Slot* from, size_t n) {
    clearSlots(from, n, targets, [worker](WorkerSlot w) { return w == worker; });
  });
  predictions_.eraseWorker(worker);
  log_.forgetWorker(worker);
}

}  // namespace turbine::kv
