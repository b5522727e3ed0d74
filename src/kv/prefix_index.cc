#include "kv/prefix_index.h"

#include <algorithm>
#include <array>
#include <bit>

#include "common/bits.h"

namespace turbine::kv {

namespace {

constexpr uint32_t kRealTiers = (1u << kNumTiers) - 1;

bool byWorker(uint32_t packed, uint32_t worker) { return (packed >> 5) < worker; }

}  // namespace

PrefixIndex::PrefixIndex(const PrefixIndexOptions& options) : options_(options), log_(options.prediction_cap) {
  for (uint32_t m = 1; m < 32; ++m) {
    double best = (m & kPredictedBit) ? 1.0 : 0.0;
    for (int t = 0; t < kNumTiers; ++t) {
      if (m & (1u << t)) best = std::max(best, options_.tier_weights[t]);
    }
    mask_weight_[m] = best;
    mask_partial_[m] = best != 1.0;
  }
  const size_t cap = std::bit_ceil(std::max<size_t>(options_.initial_capacity, 16));
  SlotTable t(cap);
  std::fill(t.data(), t.data() + cap, Slot{});
  setTable(std::move(t));
}

PrefixIndex::~PrefixIndex() { spare_faulter_.join(); }

// ---- workers -------------------------------------------------------------------------------

WorkerSlot PrefixIndex::internWorker(WorkerId worker) {
  if (auto it = slots_.find(worker); it != slots_.end()) return it->second;
  WorkerSlot slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slot_ids_[slot] = worker;
  } else {
    slot = static_cast<WorkerSlot>(slot_ids_.size());
    slot_ids_.push_back(worker);
    worker_entries_.push_back(0);
    stamp_.push_back(0);
    partial_blocks_.push_back(0);
    partial_weight_.push_back(0);
  }
  slots_.emplace(worker, slot);
  return slot;
}

std::optional<WorkerSlot> PrefixIndex::findWorker(WorkerId worker) const {
  auto it = slots_.find(worker);
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

// ---- table ---------------------------------------------------------------------------------

// The first line holds most hashes (place() fills it first), so it is looked at alone first.
[[gnu::always_inline]] inline const PrefixIndex::Slot* PrefixIndex::find(BlockHash h) const {
  const Lines l = linesOf(h);
  if (const unsigned m = matchIn(l.t, l.a, h)) return l.t + l.a + static_cast<size_t>(std::countr_zero(m));
  if (const unsigned m = matchIn(l.t, l.b, h)) return l.t + l.b + static_cast<size_t>(std::countr_zero(m));
  return nullptr;
}

[[gnu::always_inline]] inline PrefixIndex::Slot* PrefixIndex::find(BlockHash h) {
  return const_cast<Slot*>(static_cast<const PrefixIndex*>(this)->find(h));
}

// The returned slot, when new, has holder 0 and no overflow: the caller must fill it at once.
// While a doubling runs, a hash whose page has not moved goes to an empty slot of its lines in
// the old table if there is one, else its page moves first; and every kMoveEvery inserts move
// one more page, so the doubling ends long before the new table is 3/4 full.
PrefixIndex::Slot* PrefixIndex::findOrInsert(BlockHash h) {
  if (Slot* s = find(h)) return s;
  if ((size_ + 1) * 4 > table_.size() * 3) {
    grow();
  } else if ((size_ + 1) * 20 > table_.size() * 13) [[unlikely]] {
    prepareSpare();
  }
  if (old_.data() != nullptr) [[unlikely]] {
    if (++inserts_since_move_ >= kMoveEvery) {
      inserts_since_move_ = 0;
      moveSome(1);
    }
    if (Slot* s = insertIntoOldPage(h)) {
      ++size_;
      return s;
    }
  }
  for (;;) {
    if (Slot* s = place(h)) {
      ++size_;
      return s;
    }
    grow();
    if (old_.data() != nullptr) moveOwnPage(h);
  }
}

PrefixIndex::Slot* PrefixIndex::place(BlockHash h) {
  const size_t a = firstLine(h);
  if (Slot* s = placeWithoutWalk(table_.data(), h, a, a ^ lineOffset(h))) return s;
  return placeByWalk(h, a);
}

PrefixIndex::Slot* PrefixIndex::placeWithoutWalk(Slot* t, BlockHash h, size_t a, size_t b) {
  const unsigned ea = emptyIn(t, a), eb = emptyIn(t, b);
  if ((ea | eb) != 0) {  // the first line while it has room, then the second
    const size_t line = ea != 0 ? a : b;
    Slot* s = t + line + static_cast<size_t>(std::countr_zero(ea != 0 ? ea : eb));
    *s = Slot{h, 0, kNoOverflow};
    return s;
  }
  // Both full: move one resident to its other line if that has room.
  for (const size_t line : {a, b}) {
    for (size_t k = 0; k < kLineSlots; ++k) {
      Slot& r = t[line + k];
      const size_t alt = otherLine(r.hash, line);
      if (const unsigned e = emptyIn(t, alt)) {
        t[alt + static_cast<size_t>(std::countr_zero(e))] = r;
        r = Slot{h, 0, kNoOverflow};
        return &r;
      }
    }
  }
  return nullptr;
}

// A bounded random walk (cuckoo): h takes a slot of its first line, the resident goes to its
// other line, evicting a random resident there if that is full too, and so on until a line has
// room; undone if none has within kWalk moves. h's slot is marked as held while the walk runs,
// so no move takes it for an empty one. A hash's two lines are in one 4 KiB page, so each page's
// 256 slots hold their own hashes, and the fullest page fills before the table is 3/4 full: an
// 8M-slot table filled with random hashes doubled at load 0.69 with one-move and two-move
// searches alone, at 0.73 with the walk (the same with or without the two-move search, which
// was dropped).
PrefixIndex::Slot* PrefixIndex::placeByWalk(BlockHash h, size_t line) {
  constexpr size_t kWalk = 256;
  std::array<size_t, kWalk> path;  // the slots swapped, in order
  uint64_t x = mix(h) | 1;          // xorshift: which slot of a full line to take
  Slot carry{h, 1, kNoOverflow};
  size_t home = table_.size();  // h's slot, once placed
  for (size_t step = 0; step < kWalk; ++step) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t at = line + (x & (kLineSlots - 1));
    if (at == home) at = line + ((at - line + 1) & (kLineSlots - 1));
    std::swap(carry, table_[at]);
    path[step] = at;
    if (step == 0) home = at;
    line = otherLine(carry.hash, line);
    if (const unsigned e = emptyIn(line)) {
      table_[line + static_cast<size_t>(std::countr_zero(e))] = carry;
      table_[home].holder = 0;  // the caller fills it
      return &table_[home];
    }
  }
  for (size_t step = kWalk; step-- > 0;) std::swap(carry, table_[path[step]]);  // back as it was
  return nullptr;
}

void PrefixIndex::eraseSlot(Slot* s) {
  *s = Slot{};
  --size_;
}

uint32_t PrefixIndex::allocOverflow() {
  if (!pool_free_.empty()) {
    const uint32_t idx = pool_free_.back();
    pool_free_.pop_back();
    return idx;
  }
  if (pool_size_ % kPoolChunk == 0) {
    pool_.emplace_back();
    pool_.back().reserve(kPoolChunk);  // filled in place: never reallocated
  }
  pool_.back().emplace_back();
  return pool_size_++;
}

// The slot's overflow has one holder left: move it inline and recycle the overflow.
void PrefixIndex::freeOverflow(Slot* s) {
  Holders& h = holders(s->overflow);
  s->holder = h.list[0];
  h.list.clear();
  if (h.list.capacity() > 8) h.list.shrink_to_fit();
  pool_free_.push_back(s->overflow);
  s->overflow = kNoOverflow;
}

uint32_t PrefixIndex::holderMask(const Holders& h, WorkerSlot w) {
  if (h.dense) return w < h.masks.size() ? h.masks[w] : 0;
  auto it = std::lower_bound(h.list.begin(), h.list.end(), w, byWorker);
  return (it != h.list.end() && (*it >> kMaskBits) == w) ? (*it & kMaskAll) : 0;
}

void PrefixIndex::setHolderMask(Holders& h, WorkerSlot w, uint32_t mask) {
  if (!h.dense) {
    auto it = std::lower_bound(h.list.begin(), h.list.end(), w, byWorker);
    const bool present = it != h.list.end() && (*it >> kMaskBits) == w;
    if (mask == 0) {
      if (present) h.list.erase(it);
    } else if (present) {
      *it = w << kMaskBits | mask;
    } else {
      h.list.insert(it, w << kMaskBits | mask);
    }
    if (h.list.size() >= kDenseMin && h.list.size() * 16 >= slot_ids_.size()) toDense(h);
    return;
  }
  if (w >= h.masks.size()) {
    h.masks.resize(slot_ids_.size(), 0);
    h.bits.resize((slot_ids_.size() + 63) / 64, 0);
  }
  const uint32_t prev = h.masks[w];
  h.masks[w] = static_cast<uint8_t>(mask);
  if (prev == 0 && mask != 0) {
    ++h.count;
    h.bits[w / 64] |= uint64_t{1} << (w % 64);
  } else if (prev != 0 && mask == 0) {
    --h.count;
    h.bits[w / 64] &= ~(uint64_t{1} << (w % 64));
  }
  if (prev != 0 && mask_partial_[prev]) --h.partial;
  if (mask != 0 && mask_partial_[mask]) ++h.partial;
  if (h.count < kDenseMin / 2 || h.count * 32 < slot_ids_.size()) toList(h);
}

void PrefixIndex::toDense(Holders& h) {
  h.masks.assign(slot_ids_.size(), 0);
  h.bits.assign((slot_ids_.size() + 63) / 64, 0);
  h.count = 0;
  h.partial = 0;
  for (uint32_t packed : h.list) {
    const uint32_t w = packed >> kMaskBits;
    const uint32_t m = packed & kMaskAll;
    h.masks[w] = static_cast<uint8_t>(m);
    h.bits[w / 64] |= uint64_t{1} << (w % 64);
    ++h.count;
    if (mask_partial_[m]) ++h.partial;
  }
  h.list.clear();
  h.list.shrink_to_fit();
  h.dense = true;
  ++num_dense_;
}

void PrefixIndex::toList(Holders& h) {
  h.list.clear();
  h.list.reserve(h.count);
  for (size_t k = 0; k < h.bits.size(); ++k) {
    for (uint64_t word = h.bits[k]; word != 0; word &= word - 1) {
      const auto w = static_cast<uint32_t>(k * 64 + static_cast<size_t>(std::countr_zero(word)));
      h.list.push_back(w << kMaskBits | h.masks[w]);
    }
  }
  h.bits = {};
  h.masks = {};
  h.count = h.partial = 0;
  h.dense = false;
  --num_dense_;
}

uint32_t PrefixIndex::setBits(Slot* s, WorkerSlot w, uint32_t bits) {
  const uint32_t packed = w << kMaskBits | bits;
  if (s->overflow == kNoOverflow) {
    if (s->holder == 0) {
      s->holder = packed;
      return 0;
    }
    if ((s->holder >> kMaskBits) == w) {
      const uint32_t prev = s->holder & kMaskAll;
      s->holder |= bits;
      return prev;
    }
    const uint32_t idx = allocOverflow();
    auto& v = holders(idx).list;
    v.clear();
    v.reserve(4);  // one 16-byte block for the usual 2-4 holders
    v.push_back(s->holder);
    v.insert(std::lower_bound(v.begin(), v.end(), w, byWorker), packed);
    s->overflow = idx;
    s->holder = 0;
    return 0;
  }
  Holders& h = holders(s->overflow);
  const uint32_t prev = holderMask(h, w);
  if ((prev | bits) != prev) setHolderMask(h, w, prev | bits);
  return prev;
}

uint32_t PrefixIndex::clearBits(Slot* s, WorkerSlot w, uint32_t bits) {
  if (s->overflow == kNoOverflow) {
    if ((s->holder >> kMaskBits) != w) return 0;
    const uint32_t prev = s->holder & kMaskAll;
    const uint32_t now = prev & ~bits;
    if (now == 0) {
      eraseSlot(s);
    } else {
      s->holder = w << kMaskBits | now;
    }
    return prev;
  }
  Holders& h = holders(s->overflow);
  const uint32_t prev = holderMask(h, w);
  if (prev == 0 || (prev & bits) == 0) return prev;
  setHolderMask(h, w, prev & ~bits);
  if (!h.dense && h.list.size() == 1) freeOverflow(s);
  return prev;
}

void PrefixIndex::onMaskChange(WorkerSlot w, uint32_t before, uint32_t after) {
  if (before == 0 && after != 0) {
    ++num_entries_;
    ++worker_entries_[w];
  } else if (before != 0 && after == 0) {
    --num_entries_;
    --worker_entries_[w];
  }
  const bool pb = before & kPredictedBit;
  const bool pa = after & kPredictedBit;
  if (pb && !pa) --num_predictions_;
  if (!pb && pa) ++num_predictions_;
}

uint32_t PrefixIndex::mask(BlockHash hash, WorkerSlot worker) const {
  const Slot* s = find(hash);
  if (s == nullptr) return 0;
  if (s->overflow == kNoOverflow) {
    return (s->holder >> kMaskBits) == worker ? (s->holder & kMaskAll) : 0;
  }
  return holderMask(holders(s->overflow), worker);
}

// ---- events --------------------------------------------------------------------------------

void PrefixIndex::apply(WorkerSlot worker, const KvEvent& event) {
  const WorkerEvent one{worker, &event};
  apply(std::span(&one, 1));
}

// Events go in rounds of up to 64 blocks, stage by stage (prefetchRound; session 7: a
// decision's 64 block events 5.8-6.3 -> 4.6-4.7 us, stored events 9.0-9.5 -> 11.8-15.1 M
// blocks/s, 3 interleaved pairs of router_bench), where they used to be pipelined (prefetchAhead:
// each block's slot 16 blocks ahead, its set 8 ahead, its entry 4 ahead), which probed the table
// three times per block and ran into a second miss wherever a probe run left its line. The
// overlap walk (walk()) and predict() use rounds too.
void PrefixIndex::addBlock(WorkerSlot worker, BlockHash h, uint32_t bit, Slot* at) {
  Slot* s = at != nullptr ? at : findOrInsert(h);
  const uint32_t prev = setBits(s, worker, bit);
  uint32_t now = prev | bit;
  if (now & kPredictedBit) {
    clearBits(s, worker, kPredictedBit);  // never erases: the tier bit stays
    now &= ~kPredictedBit;
    if (options_.refresh_predictions) predictions_.erase(h, worker);
  }
  onMaskChange(worker, prev, now);
}

void PrefixIndex::removeBlock(WorkerSlot worker, BlockHash h, uint32_t bits, Slot* at) {
  Slot* s = at != nullptr ? at : find(h);
  if (s == nullptr) return;
  const uint32_t prev = clearBits(s, worker, bits | kPredictedBit);
  if ((prev & kPredictedBit) && options_.refresh_predictions) predictions_.erase(h, worker);
  onMaskChange(worker, prev, prev & ~(bits | kPredictedBit));
}

// Stage 1 requests both candidate lines of every op; stage 2 reads them (the slot is found
// without a miss of its own) and requests the holder sets; stage 3 the sets' entries.
[[gnu::always_inline]] inline void PrefixIndex::prefetchRound(std::span<BlockOp> ops) const {
  for (const BlockOp& op : ops) prefetch(op.hash);
  for (BlockOp& op : ops) {
    op.slot = find(op.hash);
    prefetchSet(op.slot);
  }
  for (const BlockOp& op : ops) prefetchEntry(op.slot, op.worker);
}

template <class View>
void PrefixIndex::applyViews(size_t n, View&& view) {
  size_t e = 0, b = 0;  // the next block to take: block b of event e
  while (e < n) {
    if (const EventView first = view(e); first.clear) {
      clearWorker(first.worker);
      ++e;
      continue;
    }
    // Gather up to kRound blocks of consecutive stored/removed events.
    ops_scratch_.clear();
    while (e < n && ops_scratch_.size() < kRound) {
      const EventView ev = view(e);
      if (ev.clear) break;  // after this round
      const size_t take = std::min(kRound - ops_scratch_.size(), ev.hashes.size() - b);
      for (size_t k = 0; k < take; ++k) {
        ops_scratch_.push_back(BlockOp{ev.hashes[b + k], ev.worker, ev.bit, ev.add, nullptr});
      }
      b += take;
      if (b == ev.hashes.size()) {
        ++e;
        b = 0;
      }
    }
    runRound();
  }
}

void PrefixIndex::apply(std::span<const WorkerEvent> events) {
  applyViews(events.size(), [&](size_t i) {
    const KvEvent& ev = *events[i].event;
    const auto* stored = std::get_if<BlockStored>(&ev);
    const auto* removed = std::get_if<BlockRemoved>(&ev);
    if (stored == nullptr && removed == nullptr) {
      return EventView{events[i].worker, true, false, 0, {}};
    }
    const auto& hashes = stored ? stored->block_hashes : removed->block_hashes;
    const uint32_t bit = 1u << static_cast<uint32_t>(stored ? stored->tier : removed->tier);
    return EventView{events[i].worker, false, stored != nullptr, bit, hashes};
  });
}

void PrefixIndex::apply(std::span<const FlatEvent> events, std::span<const BlockHash> hashes) {
  applyViews(events.size(), [&](size_t i) {
    const FlatEvent& ev = events[i];
    if (ev.kind == FlatEvent::Kind::kCleared) return EventView{ev.worker, true, false, 0, {}};
    const uint32_t bit = 1u << static_cast<uint32_t>(ev.tier);
    return EventView{ev.worker, false, ev.kind == FlatEvent::Kind::kStored, bit,
                     hashes.subspan(ev.begin, ev.end - ev.begin)};
  });
}

void PrefixIndex::addBlocks(WorkerSlot worker, std::span<const BlockHash> hashes, Tier tier) {
  const uint32_t bit = 1u << static_cast<uint32_t>(tier);
  applyViews(1, [&](size_t) { return EventView{worker, false, true, bit, hashes}; });
}

void PrefixIndex::removeBlocks(WorkerSlot worker, std::span<const BlockHash> hashes, Tier tier) {
  const uint32_t bit = 1u << static_cast<uint32_t>(tier);
  applyViews(1, [&](size_t) { return EventView{worker, false, false, bit, hashes}; });
}

// Flattened: the per-op helpers (addBlock, findOrInsert, setBits, eraseSlot, ...) inlined here
// (in cache ~30 -> ~27 ns per block event).
// Each op starts from the slot its stage 2 found, unless an earlier op of the round moved or
// erased it (the slot no longer holds the hash) or the table was rebuilt (in cache ~17 -> ~15 ns
// per block event: one lookup per op instead of two).
[[gnu::flatten]] void PrefixIndex::runRound() {
  if (old_.data() != nullptr) [[unlikely]] moveSome(1);  // a doubling ends without inserts too
  if (!sweeping_.empty()) [[unlikely]] sweepSome(kSweepSlots);
  prefetchRound(ops_scratch_);
  const uint64_t generation = generation_;
  for (const BlockOp& op : ops_scratch_) {
    Slot* at = const_cast<Slot*>(op.slot);
    if (at != nullptr && (generation_ != generation || at->hash != op.hash || isEmpty(*at))) at = nullptr;
    if (op.add) {
      addBlock(op.worker, op.hash, op.bits, at);
    } else {
      removeBlock(op.worker, op.hash, op.bits, at);
    }
  }
}

// ---- predictions ---------------------------------------------------------------------------

// In rounds of up to kRound blocks, stage by stage: the table lines (mostly in cache after the
// overlap walk, not for blocks past the walk's end); then each slot, with the worker's mask byte
// of a dense set requested; then the blocks the worker does not hold for real, whose prediction
// entries are requested; then the updates. (Session 7: was a pipeline that probed each block
// three times.) Requesting every block's prediction entry up front fetched 32 lines per decision
// even when the chosen worker held the whole prompt (session 4).
void PrefixIndex::predict(WorkerSlot worker, std::span<const BlockHash> hashes, int64_t now_us) {
  if (!options_.refresh_predictions) {
    // Room in the log for this decision's records (one per round), the oldest dropped first.
    hashes = hashes.first(std::min(hashes.size(), log_.maxHashes()));
    const size_t rounds = (hashes.size() + kRound - 1) / kRound;
    while (!log_.empty() && !log_.fits(hashes.size(), rounds)) dropOldestRecord();
  }
  for (size_t b = 0; b < hashes.size(); b += kRound) {
    const auto round = hashes.subspan(b, std::min(kRound, hashes.size() - b));
    for (BlockHash h : round) prefetch(h);
    predict_slots_.clear();
    for (BlockHash h : round) {
      const Slot* s = find(h);
      if (s != nullptr && s->overflow != kNoOverflow) prefetchEntry(s, worker);
      predict_slots_.push_back(s);
    }
    predict_scratch_.clear();
    for (size_t k = 0; k < round.size(); ++k) {
      const Slot* s = predict_slots_[k];
      const uint32_t held = s == nullptr ? 0
                            : s->overflow == kNoOverflow
                                ? ((s->holder >> kMaskBits) == worker ? (s->holder & kMaskAll) : 0)
                                : holderMask(holders(s->overflow), worker);
      if (held & kRealTiers) continue;  // the worker holds it for real: nothing to predict
      // Already predicted there: a log record made it and keeps it (a later one does not extend it).
      if ((held & kPredictedBit) && !options_.refresh_predictions) continue;
      predict_scratch_.push_back(round[k]);
      if (options_.refresh_predictions) predictions_.prefetch(round[k], worker);
    }
    // The index's updates first (their lines are in cache), the prediction entries after: the
    // entries requested above arrive meanwhile (steady-state predict ~3% faster, 3 alternated
    // runs each; within this VM's noise).
    size_t fresh = 0;  // predict_scratch_[0, fresh): the blocks newly predicted
    for (size_t k = 0; k < predict_scratch_.size(); ++k) {
      const BlockHash h = predict_scratch_[k];
      Slot* s = findOrInsert(h);
      const uint32_t prev = setBits(s, worker, kPredictedBit);
      onMaskChange(worker, prev, prev | kPredictedBit);
      if ((prev & kPredictedBit) == 0) predict_scratch_[fresh++] = h;
    }
    if (options_.refresh_predictions) {
      // A prediction touched again within TTL / 16 of its recorded touch is not recorded again:
      // it expires between 15/16 of the TTL and the TTL after its last touch, and a prompt
      // reused many times a second adds no stale touch records for the ring to compact.
      const int64_t coalesce_us = options_.prediction_ttl_us / 16;
      for (BlockHash h : predict_scratch_) predictions_.touch(h, worker, now_us, coalesce_us);
    } else {
      log_.append(now_us, worker, std::span(predict_scratch_).first(fresh));
    }
  }
}

// In rounds: the record's lines requested, then each block's predicted bit cleared.
void PrefixIndex::dropOldestRecord() {
  const PredictionLog::Record r = log_.front();
  for (size_t b = 0; b < r.count && r.worker != PredictionLog::kNoWorker; b += kRound) {
    const size_t n = std::min<size_t>(kRound, r.count - b);
    for (size_t k = 0; k < n; ++k) prefetch(log_.frontHash(b + k));
    for (size_t k = 0; k < n; ++k) {
      if (Slot* s = find(log_.frontHash(b + k))) {
        const uint32_t prev = clearBits(s, r.worker, kPredictedBit);
        onMaskChange(r.worker, prev, prev & ~kPredictedBit);
      }
    }
  }
  log_.popFront();
}

void PrefixIndex::expirePredictions(int64_t now_us) {
  if (!options_.refresh_predictions) {
    const size_t cap = options_.prediction_cap;
    while (!log_.empty() && (now_us - log_.front().time_us > options_.prediction_ttl_us ||
                             num_predictions_ > cap || log_.hashes() > cap)) {
      dropOldestRecord();
    }
    return;
  }
  predictions_.expire(now_us, options_.prediction_ttl_us, options_.prediction_cap,
                      [this](BlockHash h, WorkerSlot w) {
                        if (Slot* s = find(h)) {
                          const uint32_t prev = clearBits(s, w, kPredictedBit);
                          onMaskChange(w, prev, prev & ~kPredictedBit);
                        }
                      });
  if (!aging_.empty()) [[unlikely]] recycleAged();
}

// ---- queries -------------------------------------------------------------------------------

void PrefixIndex::notePartial(WorkerSlot w, uint32_t mask) {
  any_partial_ = true;
  if (stamp_[w] != epoch_) {
    stamp_[w] = epoch_;
    partial_blocks_[w] = 0;
    partial_weight_[w] = 0;
  }
  ++partial_blocks_[w];
  partial_weight_[w] += mask_weight_[mask];
}

double PrefixIndex::weightedRun(WorkerSlot w, int32_t depth) const {
  if (stamp_[w] != epoch_) return depth;
  return static_cast<double>(depth - partial_blocks_[w]) + partial_weight_[w];
}

template <class Emit>
void PrefixIndex::walkWorkers(std::span<const BlockHash> hashes, Emit&& emit) {
  walk(hashes, [&](int32_t depth, size_t k, uint64_t word) {
    for (; word != 0; word &= word - 1) {
      const auto w = static_cast<WorkerSlot>(k * 64 + static_cast<size_t>(std::countr_zero(word)));
      emit(w, depth, weightedRun(w, depth));
    }
  });
}

void PrefixIndex::findOverlaps(std::span<const BlockHash> hashes, std::vector<WorkerOverlap>& out) {
  out.clear();
  walkWorkers(hashes, [&](WorkerSlot w, int32_t depth, double weighted) {
    out.push_back(WorkerOverlap{w, depth, weighted});
  });
}

void PrefixIndex::findOverlapGroups(std::span<const BlockHash> hashes, OverlapGroups& out) {
  out.groups.clear();
  out.words.clear();
  out.matched = 0;
  out.partial = false;
  // Inlined into the walk (a call per word, with its spills, was 7% of router_bench's steady
  // state).
  walk(hashes, [&](int32_t depth, size_t k, uint64_t word) __attribute__((always_inline)) {
    if (out.groups.empty() || out.groups.back().depth != depth) {
      out.groups.push_back(OverlapGroups::Group{depth, static_cast<uint32_t>(k), 0,
                                                static_cast<uint32_t>(out.words.size())});
    }
    OverlapGroups::Group& g = out.groups.back();
    while (g.lo + g.n < k) {  // words are reported in ascending k: fill the gap
      out.words.push_back(0);
      ++g.n;
    }
    out.words.push_back(word);
    ++g.n;
    out.matched += static_cast<size_t>(popcount64(word));
  });
  out.partial = any_partial_;
}

void PrefixIndex::findOverlaps(std::span<const BlockHash> hashes, OverlapTable& table) {
  if (table.stamp.size() < slot_ids_.size()) {
    table.stamp.resize(slot_ids_.size(), 0);
    table.blocks.resize(slot_ids_.size(), 0);
    table.weighted.resize(slot_ids_.size(), 0);
  }
  if (++table.epoch == 0) {
    std::fill(table.stamp.begin(), table.stamp.end(), 0);
    table.epoch = 1;
  }
  table.matched = 0;
  walkWorkers(hashes, [&](WorkerSlot w, int32_t depth, double weighted) {
    table.stamp[w] = table.epoch;
    table.blocks[w] = depth;
    table.weighted[w] = weighted;
    ++table.matched;
  });
}

// alive_ holds the workers that hold every block so far (words [lo, hi) may be non-zero). For
// block i, next_ = alive_ ∩ holders(i); the workers that drop out have run length i. They are
// reported a word at a time: gone(run length, word index k, bits), depths ascending, k ascending
// within a depth, each worker once.
template <class Gone>
void PrefixIndex::walk(std::span<const BlockHash> hashes, Gone&& gone_fn) {
  // A doubling ends without inserts too: a query counts as 4 inserts (a page every 4 queries;
  // lookups while it runs cost up to 1.3x at 6.5M entries).
  if (old_.data() != nullptr) [[unlikely]] noteQueryWhileGrowing();
  if (!sweeping_.empty()) [[unlikely]] sweepSome(kSweepSlots);
  const bool skip_retiring = !sweeping_.empty();  // released workers are not reported
  any_partial_ = false;
  if (++epoch_ == 0) {  // wrapped: reset stamps
    std::fill(stamp_.begin(), stamp_.end(), 0);
    epoch_ = 1;
  }
  const size_t words = (slot_ids_.size() + 63) / 64;
  alive_.resize(words, 0);
  next_.resize(words, 0);
  size_t lo = 0, hi = words;  // before block 0 every worker is "alive" (the `first` case)
  // The walk is bound by cache misses: blocks are resolved in rounds of up to kRound, each stage
  // (table slots, then holder sets, then their bitsets or lists) requested for the whole round
  // before any of it is read, so the misses of a stage overlap.
  constexpr size_t kRound = 32;
  std::array<const Slot*, kRound> round{};
  size_t round_begin = 0, round_end = 0;
  size_t i = 0;
  for (; i < hashes.size(); ++i) {
    if (i == round_end) {
      round_begin = i;
      round_end = std::min(hashes.size(), i + kRound);
      for (size_t k = round_begin; k < round_end; ++k) prefetch(hashes[k]);
      size_t found = round_begin;
      for (; found < round_end; ++found) {
        const Slot* f = find(hashes[found]);
        if (f == nullptr) break;
        round[found - round_begin] = f;
        prefetchSet(f);
      }
      if (found < round_end) round[found - round_begin] = nullptr;
      round_end = std::min(round_end, found + 1);
      for (size_t k = round_begin; k < round_end; ++k) prefetchEntry(round[k - round_begin], kAnyWorker);
    }
    const Slot* s = round[i - round_begin];
    if (s == nullptr) break;
    const bool first = i == 0;
    auto alive = [&](uint32_t w) { return first || ((alive_[w / 64] >> (w % 64)) & 1) != 0; };
    std::fill(next_.begin() + static_cast<long>(lo), next_.begin() + static_cast<long>(hi), 0);
    auto take = [&](uint32_t packed) {
      const uint32_t w = packed >> kMaskBits;
      if (!alive(w)) return;
      if (first && skip_retiring && retiring(w)) return;
      next_[w / 64] |= uint64_t{1} << (w % 64);
      if (mask_partial_[packed & kMaskAll]) notePartial(w, packed & kMaskAll);
    };
    if (s->overflow == kNoOverflow) {
      take(s->holder);
    } else if (const Holders& h = holders(s->overflow); !h.dense) {
      for (uint32_t packed : h.list) take(packed);
    } else {
      const size_t n = std::min(hi, h.bits.size());
      for (size_t k = lo; k < n; ++k) next_[k] = first ? h.bits[k] : (alive_[k] & h.bits[k]);
      if (first && skip_retiring) {
        for (size_t k = lo; k < std::min(n, retiring_bits_.size()); ++k) next_[k] &= ~retiring_bits_[k];
      }
      if (h.partial > 0) {
        for (size_t k = lo; k < n; ++k) {
          for (uint64_t word = next_[k]; word != 0; word &= word - 1) {
            const auto w = static_cast<uint32_t>(k * 64 + static_cast<size_t>(std::countr_zero(word)));
            if (mask_partial_[h.masks[w]]) notePartial(w, h.masks[w]);
          }
        }
      }
    }
    // Workers alive before but not now leave with run length i; shrink [lo, hi).
    size_t new_lo = hi, new_hi = lo;
    for (size_t k = lo; k < hi; ++k) {
      if (!first) {
        if (const uint64_t gone = alive_[k] & ~next_[k]; gone != 0) gone_fn(static_cast<int32_t>(i), k, gone);
      }
      alive_[k] = next_[k];
      if (next_[k] != 0) {
        new_lo = std::min(new_lo, k);
        new_hi = k + 1;
      }
    }
    if (new_hi <= new_lo) {
      lo = hi = 0;
      ++i;
      break;
    }
    lo = new_lo;
    hi = new_hi;
  }
  // Workers still alive hold the whole walked run.
  if (i > 0) {
    for (size_t k = lo; k < hi; ++k) {
      if (alive_[k] != 0) gone_fn(static_cast<int32_t>(i), k, alive_[k]);
      alive_[k] = 0;
    }
  }
}

size_t PrefixIndex::memoryBytes() const {
  size_t bytes = (table_.size() + old_.size() + spare_.size()) * sizeof(Slot);
  bytes += pool_free_.capacity() * 4;
  for (const auto& chunk : pool_) {
    bytes += chunk.capacity() * sizeof(Holders);
    for (const auto& h : chunk) {
      bytes += h.list.capacity() * sizeof(uint32_t) + h.bits.capacity() * 8 + h.masks.capacity();
    }
  }
  bytes += predictions_.memoryBytes() + log_.memoryBytes();
  bytes += slot_ids_.capacity() * (sizeof(WorkerId) + sizeof(size_t) + 4 + 4 + 8 + 24);
  bytes += (alive_.capacity() + next_.capacity()) * 8;
  return bytes;
}

}  // namespace turbine::kv
