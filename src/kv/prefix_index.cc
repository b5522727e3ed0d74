#include "kv/prefix_index.h"

#include <algorithm>
#include <bit>

namespace turbine::kv {

namespace {

constexpr uint32_t kRealTiers = (1u << kNumTiers) - 1;

bool byWorker(uint32_t packed, uint32_t worker) { return (packed >> 5) < worker; }

}  // namespace

PrefixIndex::PrefixIndex(const PrefixIndexOptions& options) : options_(options) {
  for (uint32_t m = 1; m < 32; ++m) {
    double best = (m & kPredictedBit) ? 1.0 : 0.0;
    for (int t = 0; t < kNumTiers; ++t) {
      if (m & (1u << t)) best = std::max(best, options_.tier_weights[t]);
    }
    mask_weight_[m] = best;
  }
  const size_t cap = std::bit_ceil(std::max<size_t>(options_.initial_capacity, 16));
  table_.assign(cap, Slot{});
  shift_ = 64 - std::countr_zero(cap);
}

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
    depth_.push_back(0);
    weight_.push_back(0);
  }
  slots_.emplace(worker, slot);
  return slot;
}

std::optional<WorkerSlot> PrefixIndex::findWorker(WorkerId worker) const {
  auto it = slots_.find(worker);
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

void PrefixIndex::releaseWorker(WorkerId worker) {
  auto it = slots_.find(worker);
  if (it == slots_.end()) return;
  const WorkerSlot slot = it->second;
  clearWorker(slot);
  slots_.erase(it);
  free_slots_.push_back(slot);
}

// ---- table ---------------------------------------------------------------------------------

PrefixIndex::Slot* PrefixIndex::find(BlockHash h) {
  return const_cast<Slot*>(static_cast<const PrefixIndex*>(this)->find(h));
}

const PrefixIndex::Slot* PrefixIndex::find(BlockHash h) const {
  const size_t mask = table_.size() - 1;
  for (size_t i = home(h);; i = (i + 1) & mask) {
    const Slot& s = table_[i];
    if (isEmpty(s)) return nullptr;
    if (s.hash == h) return &s;
  }
}

// The returned slot, when new, has holder 0 and no overflow: the caller must fill it at once.
PrefixIndex::Slot* PrefixIndex::findOrInsert(BlockHash h) {
  if ((size_ + 1) * 4 > table_.size() * 3) grow();
  const size_t mask = table_.size() - 1;
  for (size_t i = home(h);; i = (i + 1) & mask) {
    Slot& s = table_[i];
    if (isEmpty(s)) {
      s.hash = h;
      ++size_;
      return &s;
    }
    if (s.hash == h) return &s;
  }
}

void PrefixIndex::eraseSlot(Slot* s) {
  const size_t mask = table_.size() - 1;
  size_t hole = static_cast<size_t>(s - table_.data());
  table_[hole] = Slot{};
  --size_;
  // Backward-shift: move later members of the probe run into the hole when their home allows.
  for (size_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
    Slot& cur = table_[i];
    if (isEmpty(cur)) return;
    const size_t want = home(cur.hash);
    // cur may move to `hole` iff hole lies cyclically in [want, i).
    if (((i - want) & mask) >= ((i - hole) & mask)) {
      table_[hole] = cur;
      cur = Slot{};
      hole = i;
    }
  }
}

void PrefixIndex::grow() {
  std::vector<Slot> old;
  old.swap(table_);
  table_.assign(old.size() * 2, Slot{});
  shift_ -= 1;
  const size_t mask = table_.size() - 1;
  for (const Slot& s : old) {
    if (isEmpty(s)) continue;
    size_t i = home(s.hash);
    while (!isEmpty(table_[i])) i = (i + 1) & mask;
    table_[i] = s;
  }
}

uint32_t PrefixIndex::allocOverflow() {
  if (!pool_free_.empty()) {
    const uint32_t idx = pool_free_.back();
    pool_free_.pop_back();
    return idx;
  }
  pool_.emplace_back();
  return static_cast<uint32_t>(pool_.size() - 1);
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
    auto& v = pool_[idx];
    v.clear();
    v.push_back(s->holder);
    v.insert(std::lower_bound(v.begin(), v.end(), w, byWorker), packed);
    s->overflow = idx;
    s->holder = 0;
    return 0;
  }
  auto& v = pool_[s->overflow];
  auto it = std::lower_bound(v.begin(), v.end(), w, byWorker);
  if (it != v.end() && (*it >> kMaskBits) == w) {
    const uint32_t prev = *it & kMaskAll;
    *it |= bits;
    return prev;
  }
  v.insert(it, packed);
  return 0;
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
  auto& v = pool_[s->overflow];
  auto it = std::lower_bound(v.begin(), v.end(), w, byWorker);
  if (it == v.end() || (*it >> kMaskBits) != w) return 0;
  const uint32_t prev = *it & kMaskAll;
  const uint32_t now = prev & ~bits;
  if (now != 0) {
    *it = w << kMaskBits | now;
    return prev;
  }
  v.erase(it);
  if (v.size() == 1) {
    s->holder = v[0];
    pool_free_.push_back(s->overflow);
    s->overflow = kNoOverflow;
    v.clear();
    if (v.capacity() > 8) v.shrink_to_fit();
  }
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
  const auto& v = pool_[s->overflow];
  auto it = std::lower_bound(v.begin(), v.end(), worker, byWorker);
  return (it != v.end() && (*it >> kMaskBits) == worker) ? (*it & kMaskAll) : 0;
}

// ---- events --------------------------------------------------------------------------------

void PrefixIndex::apply(WorkerSlot worker, const KvEvent& event) {
  if (const auto* s = std::get_if<BlockStored>(&event)) {
    addBlocks(worker, s->block_hashes, s->tier);
  } else if (const auto* r = std::get_if<BlockRemoved>(&event)) {
    removeBlocks(worker, r->block_hashes, r->tier);
  } else {
    clearWorker(worker);
  }
}

void PrefixIndex::addBlocks(WorkerSlot worker, std::span<const BlockHash> hashes, Tier tier) {
  const uint32_t bit = 1u << static_cast<uint32_t>(tier);
  for (BlockHash h : hashes) {
    Slot* s = findOrInsert(h);
    uint32_t prev = setBits(s, worker, bit);
    uint32_t now = prev | bit;
    if (now & kPredictedBit) {
      clearBits(s, worker, kPredictedBit);  // never erases: the tier bit stays
      now &= ~kPredictedBit;
      dropPrediction(worker, h);
    }
    onMaskChange(worker, prev, now);
  }
}

void PrefixIndex::removeBlocks(WorkerSlot worker, std::span<const BlockHash> hashes, Tier tier) {
  const uint32_t bits = (1u << static_cast<uint32_t>(tier)) | kPredictedBit;
  for (BlockHash h : hashes) {
    Slot* s = find(h);
    if (s == nullptr) continue;
    const uint32_t prev = clearBits(s, worker, bits);
    if (prev & kPredictedBit) dropPrediction(worker, h);
    onMaskChange(worker, prev, prev & ~bits);
  }
}

void PrefixIndex::clearWorker(WorkerSlot worker) {
  for (size_t i = 0; i < table_.size();) {
    Slot& s = table_[i];
    if (isEmpty(s)) {
      ++i;
      continue;
    }
    const BlockHash h = s.hash;
    const uint32_t prev = clearBits(&s, worker, kMaskAll);
    onMaskChange(worker, prev, 0);
    // An erase shifts a later slot into i: look at i again.
    if (isEmpty(table_[i]) || table_[i].hash != h) continue;
    ++i;
  }
  for (auto it = pred_touch_.begin(); it != pred_touch_.end();) {
    it = it->first.worker == worker ? pred_touch_.erase(it) : std::next(it);
  }
}

// ---- predictions ---------------------------------------------------------------------------

void PrefixIndex::dropPrediction(WorkerSlot w, BlockHash h) { pred_touch_.erase(PredKey{h, w}); }

void PrefixIndex::predict(WorkerSlot worker, std::span<const BlockHash> hashes, int64_t now_us) {
  for (BlockHash h : hashes) {
    Slot* s = findOrInsert(h);
    const uint32_t prev = setBits(s, worker, kPredictedBit);
    if (prev & kRealTiers) {
      if (!(prev & kPredictedBit)) clearBits(s, worker, kPredictedBit);
      continue;
    }
    onMaskChange(worker, prev, prev | kPredictedBit);
    const PredKey key{h, worker};
    pred_touch_[key] = now_us;
    pred_fifo_.push_back(PredRecord{now_us, key});
  }
  // Keep stale records bounded: compact when they outnumber live ones.
  if (pred_fifo_.size() > 2 * pred_touch_.size() + 4096) {
    std::deque<PredRecord> live;
    for (const auto& r : pred_fifo_) {
      auto it = pred_touch_.find(r.key);
      if (it != pred_touch_.end() && it->second == r.touch_us) live.push_back(r);
    }
    pred_fifo_.swap(live);
  }
}

void PrefixIndex::expirePredictions(int64_t now_us) {
  while (!pred_fifo_.empty()) {
    const PredRecord r = pred_fifo_.front();
    auto it = pred_touch_.find(r.key);
    if (it == pred_touch_.end() || it->second != r.touch_us) {
      pred_fifo_.pop_front();  // stale: confirmed, removed or touched again later
      continue;
    }
    const bool too_old = now_us - r.touch_us > options_.prediction_ttl_us;
    if (!too_old && pred_touch_.size() <= options_.prediction_cap) return;
    pred_fifo_.pop_front();
    pred_touch_.erase(it);
    if (Slot* s = find(r.key.hash)) {
      const uint32_t prev = clearBits(s, r.key.worker, kPredictedBit);
      onMaskChange(r.key.worker, prev, prev & ~kPredictedBit);
    }
  }
}

// ---- queries -------------------------------------------------------------------------------

void PrefixIndex::findOverlaps(std::span<const BlockHash> hashes, std::vector<WorkerOverlap>& out) {
  out.clear();
  touched_.clear();
  if (++epoch_ == 0) {  // wrapped: reset stamps
    std::fill(stamp_.begin(), stamp_.end(), 0);
    epoch_ = 1;
  }
  auto visit = [&](uint32_t packed, int32_t i) {
    const uint32_t w = packed >> kMaskBits;
    const double wt = mask_weight_[packed & kMaskAll];
    if (i == 0) {
      stamp_[w] = epoch_;
      depth_[w] = 1;
      weight_[w] = wt;
      touched_.push_back(w);
      return true;
    }
    if (stamp_[w] == epoch_ && depth_[w] == i) {
      depth_[w] = i + 1;
      weight_[w] += wt;
      return true;
    }
    return false;
  };
  for (size_t i = 0; i < hashes.size(); ++i) {
    const Slot* s = find(hashes[i]);
    if (s == nullptr) break;
    const auto depth = static_cast<int32_t>(i);
    int alive = 0;
    if (s->overflow == kNoOverflow) {
      alive += visit(s->holder, depth) ? 1 : 0;
    } else {
      for (uint32_t packed : pool_[s->overflow]) alive += visit(packed, depth) ? 1 : 0;
    }
    if (alive == 0) break;
  }
  out.reserve(touched_.size());
  for (WorkerSlot w : touched_) out.push_back(WorkerOverlap{w, depth_[w], weight_[w]});
}

size_t PrefixIndex::memoryBytes() const {
  size_t bytes = table_.capacity() * sizeof(Slot);
  bytes += pool_.capacity() * sizeof(std::vector<uint32_t>) + pool_free_.capacity() * 4;
  for (const auto& v : pool_) bytes += v.capacity() * sizeof(uint32_t);
  // unordered_map node: key + value + next pointer + cached hash, plus one bucket pointer.
  bytes += pred_touch_.size() * (sizeof(PredKey) + sizeof(int64_t) + 2 * sizeof(void*)) +
           pred_touch_.bucket_count() * sizeof(void*);
  bytes += pred_fifo_.size() * sizeof(PredRecord);
  bytes += slot_ids_.capacity() * (sizeof(WorkerId) + sizeof(size_t) + 4 + 4 + 8 + 24);
  return bytes;
}

}  // namespace turbine::kv
