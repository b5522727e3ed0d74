#include "router/kv_router.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>

#include "common/bits.h"

namespace turbine::router {

namespace {

int64_t steadyUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The worker slot of the lowest set bit of word k of a bitset over slots.
kv::WorkerSlot slotOf(uint32_t k, uint64_t word) {
  return k * 64 + static_cast<uint32_t>(std::countr_zero(word));
}

kv::PrefixIndexOptions indexOptions(const KvRouterOptions& o) {
  kv::PrefixIndexOptions io;
  io.tier_weights = o.tier_weights;
  io.prediction_ttl_us = (o.use_kv_events ? o.prediction_ttl_ms : o.approx_ttl_ms) * 1000;
  io.prediction_cap = o.prediction_cap;
  io.refresh_predictions = !o.use_kv_events;  // with events, per-decision records (PredictionLog)
  // The table doubles when more than 3/4 full.
  if (o.index_blocks > 0) {
    io.initial_capacity = std::max(io.initial_capacity, o.index_blocks / 3 * 4 + 4);
  }
  return io;
}

}  // namespace

KvRouterOptions KvRouterOptions::from(const RouterOptions& options) {
  KvRouterOptions o;
  o.overlap_weight = options.overlap_weight;
  o.temperature = options.temperature;
  o.use_kv_events = options.use_kv_events;
  o.seed = options.seed;
  o.busy_kv_fraction = options.busy_kv_fraction;
  o.busy_prefill_tokens = options.busy_prefill_tokens;
  o.queued_prefill_weight = options.queued_prefill_weight;
  o.index_blocks = options.index_blocks;
  return o;
}

// ---- LatencyHistogram ----------------------------------------------------------------------

void LatencyHistogram::record(int64_t ns) {
  const auto v = static_cast<uint64_t>(std::max<int64_t>(ns, 0));
  int b;
  if (v < 8) {
    b = static_cast<int>(v);
  } else {
    const int e = std::bit_width(v) - 1;
    b = (e - 2) * 8 + static_cast<int>((v >> (e - 3)) & 7);
  }
  ++counts_[std::min(b, kBuckets - 1)];
  ++count_;
}

int64_t LatencyHistogram::quantileNs(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * count_));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= std::max<uint64_t>(rank, 1)) {
      if (b < 8) return b;
      const int e = b / 8 + 2;
      const uint64_t lower = static_cast<uint64_t>(8 + b % 8) << (e - 3);
      return static_cast<int64_t>(lower + (uint64_t{1} << (e - 3)) - 1);
    }
  }
  return 0;
}

// ---- KvRouter ------------------------------------------------------------------------------

KvRouter::KvRouter(const KvRouterOptions& options)
    : options_(options), index_(indexOptions(options)), rng_(options.seed) {
  for (double w : options_.tier_weights) unit_weights_ = unit_weights_ && w <= 1.0;
}

int64_t KvRouter::nowUs() const { return options_.now_us ? options_.now_us() : steadyUs(); }

KvRouter::WorkerState& KvRouter::state(kv::WorkerSlot slot) {
  if (slot >= workers_.size()) {
    workers_.resize(slot + 1);
    infos_.resize(slot + 1);
    active_.resize(slot + 1, 0);
    block_size_.resize(slot + 1, 1);
    qterm_.resize(slot + 1, 0.0);
    busy_.resize(slot + 1, 0);
    filed_.resize(slot + 1);
  }
  return workers_[slot];
}

void KvRouter::addWorker(const WorkerInfo& worker) {
  std::lock_guard lock(mu_);
  flushEvents();
  const kv::WorkerSlot slot = index_.internWorker(worker.id);
  WorkerState& w = state(slot);
  if (w.present) leaveModel(slot);
  w.present = true;
  w.block_size = std::max(worker.block_size, 1);
  w.kv_blocks_total = worker.kv_blocks_total;
  infos_[slot] = worker;
  joinModel(slot, worker.model_id);
  refresh(slot);
}

void KvRouter::removeWorker(WorkerId worker) {
  std::lock_guard lock(mu_);
  flushEvents();  // the worker's buffered events name its slot, which is recycled below
  const auto slot = index_.findWorker(worker);
  if (!slot) return;
  WorkerState& w = state(*slot);
  if (w.present) leaveModel(*slot);
  // Requests still pending there keep their record (onRequestFinished releases nothing harmful);
  // the slot is reused only after they are gone from the index's view.
  for (auto& [id, p] : pending_) {
    if (p.worker == *slot) p.blocks = p.prefill_tokens = 0;
  }
  index_.releaseWorker(worker);
  w = WorkerState{};
  infos_[*slot] = WorkerInfo{};
  refresh(*slot);
}

// Everything the router keeps by slot: its state, its filing in its model, pending requests.
void KvRouter::moveWorker(kv::WorkerSlot from, kv::WorkerSlot to) {
  state(std::max(from, to));
  const bool present = workers_[from].present;
  if (present) leaveModel(from);
  workers_[to] = std::exchange(workers_[from], WorkerState{});
  infos_[to] = std::exchange(infos_[from], WorkerInfo{});
  for (auto& [id, p] : pending_) {
    if (p.worker == from) p.worker = to;
  }
  if (present) joinModel(to, infos_[to].model_id);
  refresh(from);
  refresh(to);
}

void KvRouter::noteMessage(kv::WorkerSlot slot, const kv::KvEventMessage& msg) {
  WorkerState& w = state(slot);
  if (w.have_seq && msg.seq != w.next_seq) {
    ++stats_.seq_gaps;
    if (options_.on_seq_gap) options_.on_seq_gap(msg.worker_id, w.next_seq, msg.seq);
  }
  w.have_seq = true;
  w.next_seq = msg.seq + 1;
  using Flat = kv::PrefixIndex::FlatEvent;
  for (const auto& e : msg.events) {
    ++stats_.events_applied;
    Flat f{slot, Flat::Kind::kStored, kv::Tier::kDevice, 0, 0};
    const std::vector<kv::BlockHash>* hashes = nullptr;
    if (const auto* s = std::get_if<kv::BlockStored>(&e)) {
      f.tier = s->tier;
      hashes = &s->block_hashes;
    } else if (const auto* r = std::get_if<kv::BlockRemoved>(&e)) {
      f.kind = Flat::Kind::kRemoved;
      f.tier = r->tier;
      hashes = &r->block_hashes;
    } else {  // AllCleared: after the events before it, the worker may go on under a new slot
      flushEvents();
      const kv::WorkerSlot now = index_.renewWorker(msg.worker_id);
      if (now != slot) moveWorker(slot, now);
      slot = now;
      continue;
    }
    stats_.blocks_applied += hashes->size();
    f.begin = static_cast<uint32_t>(pending_hashes_.size());
    pending_hashes_.insert(pending_hashes_.end(), hashes->begin(), hashes->end());
    f.end = static_cast<uint32_t>(pending_hashes_.size());
    pending_events_.push_back(f);
  }
}

void KvRouter::flushEvents() const {
  if (pending_events_.empty()) return;
  index_.apply(pending_events_, pending_hashes_);
  pending_events_.clear();
  pending_hashes_.clear();
}

void KvRouter::onKvEvents(const kv::KvEventMessage& msg) {
  std::lock_guard lock(mu_);
  ++stats_.event_messages;
  if (!options_.use_kv_events) return;
  noteMessage(index_.internWorker(msg.worker_id), msg);
  constexpr size_t kRound = kv::PrefixIndex::kRound;
  if (pending_hashes_.size() >= kRound || pending_events_.size() >= kRound) flushEvents();
}

void KvRouter::onLoad(const kv::LoadMetrics& load) {
  std::lock_guard lock(mu_);
  const auto slot = index_.findWorker(load.worker_id);
  if (!slot) return;
  WorkerState& w = state(*slot);
  w.have_report = true;
  w.reported_used = std::max<int64_t>(load.kv_blocks_used - w.finished_since_report, 0);
  w.finished_since_report = 0;
  w.since_report = 0;
  refresh(*slot);
}

void KvRouter::refresh(kv::WorkerSlot slot) {
  const WorkerState& w = workers_[slot];
  active_[slot] = active(w);
  block_size_[slot] = w.block_size;
  const double qpw = options_.overlap_weight * options_.queued_prefill_weight;
  qterm_[slot] = qpw > 0 ? qpw * static_cast<double>(w.queued_prefill) / w.block_size : 0.0;
  busy_[slot] = busy(w) ? 1 : 0;
  const Filing& f = filed_[slot];
  const bool same = f.filed && f.busy == (busy_[slot] != 0) && (f.busy || f.active == active_[slot]);
  if (f.model != nullptr && same) return;
  unfile(slot);
  file(slot);
}

void KvRouter::unfile(kv::WorkerSlot slot) {
  Filing& f = filed_[slot];
  if (!f.filed) return;
  f.filed = false;
  ModelWorkers& m = *f.model;
  if (f.busy) {
    --m.busy;
    return;
  }
  auto it = m.ready.find(f.active);
  it->second.bits[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  if (--it->second.count == 0) m.spare.push_back(m.ready.extract(it));  // node kept for reuse
}

void KvRouter::file(kv::WorkerSlot slot) {
  Filing& f = filed_[slot];
  if (f.model == nullptr || f.filed) return;
  ModelWorkers& m = *f.model;
  f.filed = true;
  f.busy = busy_[slot] != 0;
  f.active = active_[slot];
  if (f.busy) {
    ++m.busy;
    return;
  }
  auto it = m.ready.find(f.active);
  if (it == m.ready.end()) {
    if (m.spare.empty()) {
      it = m.ready.emplace(f.active, Bucket{}).first;
    } else {
      auto node = std::move(m.spare.back());
      m.spare.pop_back();
      node.key() = f.active;
      std::fill(node.mapped().bits.begin(), node.mapped().bits.end(), 0);
      it = m.ready.insert(std::move(node)).position;
    }
  }
  Bucket& b = it->second;
  if (b.bits.size() <= slot / 64) b.bits.resize(slot / 64 + 1, 0);
  b.bits[slot / 64] |= uint64_t{1} << (slot % 64);
  ++b.count;
}

void KvRouter::joinModel(kv::WorkerSlot slot, const std::string& model) {
  ModelWorkers& m = by_model_[model];
  m.slots.insert(std::lower_bound(m.slots.begin(), m.slots.end(), slot), slot);
  filed_[slot].model = &m;
  noteBlockSizes(m);
}

void KvRouter::noteBlockSizes(ModelWorkers& m) {
  m.mixed_block_sizes = false;
  for (kv::WorkerSlot s : m.slots) {
    m.mixed_block_sizes |= workers_[s].block_size != workers_[m.slots[0]].block_size;
  }
}

void KvRouter::leaveModel(kv::WorkerSlot slot) {
  unfile(slot);
  ModelWorkers& m = *filed_[slot].model;
  m.slots.erase(std::remove(m.slots.begin(), m.slots.end(), slot), m.slots.end());
  filed_[slot].model = nullptr;
  noteBlockSizes(m);
}

int64_t KvRouter::active(const WorkerState& w) const {
  if (!w.have_report) return w.local_active;
  return std::max(w.local_active, w.reported_used + w.since_report);
}

bool KvRouter::busy(const WorkerState& w) const {
  if (options_.busy_kv_fraction > 0 && w.kv_blocks_total > 0 &&
      static_cast<double>(active(w)) > options_.busy_kv_fraction * w.kv_blocks_total) {
    return true;
  }
  return options_.busy_prefill_tokens > 0 && w.queued_prefill > options_.busy_prefill_tokens;
}

size_t KvRouter::pick(const std::vector<Candidate>& c) {
  if (options_.temperature > 0) {
    double lo = c[0].cost;
    for (const auto& x : c) lo = std::min(lo, x.cost);
    double total = 0;
    for (const auto& x : c) total += std::exp(-(x.cost - lo) / options_.temperature);
    double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
    for (size_t i = 0; i < c.size(); ++i) {
      r -= std::exp(-(c[i].cost - lo) / options_.temperature);
      if (r <= 0) return i;
    }
    return c.size() - 1;
  }
  size_t best = 0;
  uint64_t ties = 1;
  for (size_t i = 1; i < c.size(); ++i) {
    const auto& a = c[i];
    const auto& b = c[best];
    if (a.cost < b.cost || (a.cost == b.cost && a.active < b.active)) {
      best = i;
      ties = 1;
    } else if (a.cost == b.cost && a.active == b.active) {
      // Reservoir sampling: each tied candidate ends up chosen with probability 1 / ties.
      if (std::uniform_int_distribution<uint64_t>(0, ties++)(rng_) == 0) best = i;
    }
  }
  return best;
}

// Temperature 0: one pass over the model's workers keeping the minimum (cost, active) and the
// workers tied on it, then one random draw among the ties. Busy workers compete only when every
// worker is busy. Temperature > 0: candidates are collected and sampled (pick()).
kv::WorkerSlot KvRouter::choose(const std::vector<kv::WorkerSlot>& slots, int64_t hashed,
                                int32_t prompt_tokens) {
  int32_t last_bs = -1;
  int64_t blocks = 0;
  auto costOf = [&](kv::WorkerSlot slot, const WorkerState& w) {
    if (w.block_size != last_bs) {  // workers of one model share a block size: divide once
      last_bs = w.block_size;
      blocks = std::max<int64_t>(hashed, (prompt_tokens + last_bs - 1) / last_bs);
    }
    return options_.overlap_weight * (static_cast<double>(blocks) - overlaps_.weightedOf(slot)) +
           static_cast<double>(active(w)) +
           options_.overlap_weight * options_.queued_prefill_weight *
               static_cast<double>(w.queued_prefill) / last_bs;
  };
  if (options_.temperature > 0) {
    candidates_.clear();
    busy_candidates_.clear();
    for (kv::WorkerSlot slot : slots) {
      const WorkerState& w = workers_[slot];
      (busy(w) ? busy_candidates_ : candidates_).push_back(Candidate{slot, costOf(slot, w), active(w)});
    }
    stats_.busy_skips += busy_candidates_.size();
    const auto& pool = candidates_.empty() ? busy_candidates_ : candidates_;
    return pool[pick(pool)].worker;
  }
  const bool thresholds = options_.busy_kv_fraction > 0 || options_.busy_prefill_tokens > 0;
  double best = costPass(slots, hashed, prompt_tokens, thresholds);
  if (thresholds) {
    size_t skipped = 0;
    for (kv::WorkerSlot slot : slots) skipped += busy_[slot];
    stats_.busy_skips += skipped;
    // Every worker busy: they all compete (a request is never refused for load).
    if (best == kSkipped) best = costPass(slots, hashed, prompt_tokens, false);
  }
  // Second look, only at the workers whose cost is the minimum: fewest active blocks, and the
  // workers tied on both in slot-list order, then one seeded draw among them.
  int64_t best_active = 0;
  ties_.clear();
  const double* cost = costs_.data();
  for (size_t i = 0; i < slots.size(); ++i) {
    if (cost[i] != best) continue;
    const int64_t act = active_[slots[i]];
    if (ties_.empty() || act < best_active) {
      best_active = act;
      ties_.clear();
      ties_.push_back(slots[i]);
    } else if (act == best_active) {
      ties_.push_back(slots[i]);
    }
  }
  if (ties_.size() == 1) return ties_[0];
  return ties_[std::uniform_int_distribution<size_t>(0, ties_.size() - 1)(rng_)];
}

// costs_[i] = cost of slots[i] (kSkipped for a busy worker when skip_busy); returns the minimum.
// Branch-free over the dense per-slot arrays, with four independent minima so that the
// comparisons do not form one dependency chain.
double KvRouter::costPass(const std::vector<kv::WorkerSlot>& slots, int64_t hashed, int32_t prompt_tokens,
                          bool skip_busy) {
  const size_t n = slots.size();
  if (costs_.size() < n) costs_.resize(n);
  double* cost = costs_.data();
  const double ow = options_.overlap_weight;
  int32_t last_bs = -1;
  double blocks = 0;
  const uint32_t epoch = overlaps_.epoch;
  const uint32_t* stamp = overlaps_.stamp.data();
  const double* weighted = overlaps_.weighted.data();
  auto costOf = [&](kv::WorkerSlot slot) {
    if (block_size_[slot] != last_bs) {  // workers of one model share a block size: divide once
      last_bs = block_size_[slot];
      blocks = static_cast<double>(std::max<int64_t>(hashed, (prompt_tokens + last_bs - 1) / last_bs));
    }
    const double overlap = stamp[slot] == epoch ? weighted[slot] : 0.0;
    const double c = ow * (blocks - overlap) + static_cast<double>(active_[slot]) + qterm_[slot];
    return skip_busy && busy_[slot] ? kSkipped : c;
  };
  double m0 = kSkipped, m1 = kSkipped, m2 = kSkipped, m3 = kSkipped;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    cost[i] = costOf(slots[i]);
    cost[i + 1] = costOf(slots[i + 1]);
    cost[i + 2] = costOf(slots[i + 2]);
    cost[i + 3] = costOf(slots[i + 3]);
    m0 = std::min(m0, cost[i]);
    m1 = std::min(m1, cost[i + 1]);
    m2 = std::min(m2, cost[i + 2]);
    m3 = std::min(m3, cost[i + 3]);
  }
  for (; i < n; ++i) {
    cost[i] = costOf(slots[i]);
    m0 = std::min(m0, cost[i]);
  }
  return std::min(std::min(m0, m1), std::min(m2, m3));
}

std::pair<kv::WorkerSlot, int32_t> KvRouter::decide(ModelWorkers& m, const RouteRequest& request) {
  const auto hashed = static_cast<int64_t>(request.block_hashes.size());
  index_.findOverlapGroups(request.block_hashes, groups_);
  kv::WorkerSlot chosen = 0;
  if (prunable(m) && choosePruned(m, hashed, request.prompt_tokens, chosen)) {
    return {chosen, groupDepth(chosen)};
  }
  tableFromGroups();
  chosen = choose(m.slots, hashed, request.prompt_tokens);
  return {chosen, overlaps_.blocksOf(chosen)};
}

// The pruned path needs cost(w) = f(overlap(w)) + active(w) [+ queued-prefill term >= 0] with f
// non-increasing: tier weights <= 1 (a run of d blocks weighs at most d), one block size.
bool KvRouter::prunable(const ModelWorkers& m) const {
  return !options_.exhaustive && !(options_.temperature > 0) && unit_weights_ &&
         options_.overlap_weight >= 0 && !m.mixed_block_sizes;
}

// Temperature 0, deciding exactly as the full pass does without looking at every worker. The
// workers whose run is d blocks long cost at least base(d) + min active, base(d) =
// overlap_weight * (blocks - d) growing as d shrinks: the groups of the overlap walk are
// visited deepest first, each member costed, until that bound exceeds the best cost found.
// Workers holding nothing of the prompt differ only by active blocks: the lowest bucket of
// `m.ready` with a worker outside every group gives all of them at once (a bitset); with a
// queued-prefill term they are costed one by one (only when they can win). Ties are then
// drawn exactly as choose() draws them (ascending slot order, one draw).
bool KvRouter::choosePruned(ModelWorkers& m, int64_t hashed, int32_t prompt_tokens, kv::WorkerSlot& chosen) {
  if (m.ready.empty()) return false;  // every worker busy: the full pass lets them all compete
  if (options_.busy_kv_fraction > 0 || options_.busy_prefill_tokens > 0) stats_.busy_skips += m.busy;
  const int32_t bs = workers_[m.slots[0]].block_size;
  const double blocks = static_cast<double>(std::max<int64_t>(hashed, (prompt_tokens + bs - 1) / bs));
  Best best;
  ties_.clear();
  const Bucket* tied_bucket = nullptr;
  const double amin = static_cast<double>(m.ready.begin()->first);
  if (scanGroups(m, blocks, amin, best) && options_.overlap_weight * (blocks - 0.0) + amin <= best.cost) {
    tied_bucket = scanOutside(m, blocks, best);  // workers outside every group may win
  }
  if (tied_bucket != nullptr) {
    tie_bits_.assign(matched_.size(), 0);
    for (size_t k = 0; k < tied_bucket->bits.size(); ++k) tie_bits_[k] = tied_bucket->bits[k] & ~matched_[k];
  }
  chosen = drawTie(tied_bucket != nullptr);
  return true;
}

void KvRouter::consider(Best& best, kv::WorkerSlot w, double cost, int64_t act) {
  if (cost < best.cost || (cost == best.cost && act < best.active)) {
    best = Best{cost, act};
    ties_.clear();
    ties_.push_back(w);
  } else if (cost == best.cost && act == best.active) {
    ties_.push_back(w);
  }
}

// Overlap groups deepest first; false when the bound stopped the scan (no shallower group, and no
// worker outside every group, can win).
bool KvRouter::scanGroups(const ModelWorkers& m, double blocks, double amin, Best& best) {
  const double ow = options_.overlap_weight;
  const bool unit_cost = !groups_.partial && !(ow * options_.queued_prefill_weight > 0);
  for (size_t g = groups_.groups.size(); g > 0; --g) {
    const kv::OverlapGroups::Group& grp = groups_.groups[g - 1];
    if (ow * (blocks - static_cast<double>(grp.depth)) + amin > best.cost) return false;
    if (unit_cost && grp.n > 1 && scanBigGroup(m, grp, ow * (blocks - static_cast<double>(grp.depth)), best)) {
      continue;
    }
    for (uint32_t j = 0; j < grp.n; ++j) {
      for (uint64_t word = groups_.words[grp.offset + j]; word != 0; word &= word - 1) {
        const kv::WorkerSlot w = slotOf(grp.lo + j, word);
        if (w >= filed_.size() || filed_[w].model != &m || busy_[w]) continue;
        const double overlap =
            groups_.partial ? index_.runWeight(w, grp.depth) : static_cast<double>(grp.depth);
        consider(best, w, ow * (blocks - overlap) + static_cast<double>(active_[w]) + qterm_[w], active_[w]);
      }
    }
  }
  return true;
}

// A group spanning several words (a prefix held by many workers) whose members all cost
// base + active: its best members are those in the lowest bucket of `m.ready` that meets the
// group, found a word at a time instead of costing each member (busy workers and other models'
// are in no bucket, as scanGroups skips them). False when it gives up (more than kMaxBuckets
// buckets below the group's lowest member): the caller then costs members one by one.
bool KvRouter::scanBigGroup(const ModelWorkers& m, const kv::OverlapGroups::Group& grp, double base, Best& best) {
  constexpr int kMaxBuckets = 16;
  int visited = 0;
  for (const auto& [a, bucket] : m.ready) {  // ascending active blocks
    const double cost = base + static_cast<double>(a);
    if (cost > best.cost || (cost == best.cost && a > best.active)) return true;  // none can win
    if (++visited > kMaxBuckets) return false;
    bool found = false;
    for (uint32_t j = 0; j < grp.n; ++j) {
      const size_t k = grp.lo + j;
      if (k >= bucket.bits.size()) break;
      uint64_t word = groups_.words[grp.offset + j] & bucket.bits[k];
      if (word == 0) continue;
      if (!found) {
        found = true;
        if (cost < best.cost || a < best.active) ties_.clear();
        best = Best{cost, a};
      }
      for (; word != 0; word &= word - 1) ties_.push_back(slotOf(static_cast<uint32_t>(k), word));
    }
    if (found) return true;  // higher buckets cost more
  }
  return true;  // no member is ready
}

// The best non-busy workers of `m` in no overlap group (matched_ = the groups' union). Returns the
// bucket whose members outside matched_ tie for the best, or nullptr (then ties_ has them).
const KvRouter::Bucket* KvRouter::scanOutside(const ModelWorkers& m, double blocks, Best& best) {
  const double ow = options_.overlap_weight;
  matched_.assign((filed_.size() + 63) / 64, 0);
  for (const auto& grp : groups_.groups) {
    for (uint32_t j = 0; j < grp.n && grp.lo + j < matched_.size(); ++j) {
      matched_[grp.lo + j] |= groups_.words[grp.offset + j];
    }
  }
  if (ow * options_.queued_prefill_weight > 0) {
    // Queued prefill counts too, and the buckets know only active blocks: cost each of them.
    for (kv::WorkerSlot w : m.slots) {
      if (((matched_[w / 64] >> (w % 64)) & 1) != 0 || busy_[w]) continue;
      consider(best, w, ow * (blocks - 0.0) + static_cast<double>(active_[w]) + qterm_[w], active_[w]);
    }
    return nullptr;
  }
  for (const auto& [a, bucket] : m.ready) {  // ascending active blocks: the first one found wins
    const double cost = ow * (blocks - 0.0) + static_cast<double>(a) + 0.0;
    if (cost > best.cost || (cost == best.cost && a > best.active)) return nullptr;
    bool any = false;
    for (size_t k = 0; k < bucket.bits.size() && !any; ++k) any = (bucket.bits[k] & ~matched_[k]) != 0;
    if (!any) continue;
    if (cost < best.cost || a < best.active) ties_.clear();
    best = Best{cost, a};
    return &bucket;
  }
  return nullptr;
}

kv::WorkerSlot KvRouter::drawTie(bool bits) {
  if (!bits) {
    if (ties_.size() == 1) return ties_[0];
    if (ties_.size() <= 32) {
      std::sort(ties_.begin(), ties_.end());
      return ties_[std::uniform_int_distribution<size_t>(0, ties_.size() - 1)(rng_)];
    }
    // Many ties (a popular prefix held by hundreds of idle workers): the k-th lowest slot from a
    // bitset, O(ties + words), the same pick as sorting (each worker is in ties_ once).
    tie_bits_.assign((filed_.size() + 63) / 64, 0);
  }
  for (kv::WorkerSlot w : ties_) tie_bits_[w / 64] |= uint64_t{1} << (w % 64);
  size_t n = 0;
  for (uint64_t word : tie_bits_) n += static_cast<size_t>(popcount64(word));
  size_t k = n == 1 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  for (size_t i = 0; i < tie_bits_.size(); ++i) {
    uint64_t word = tie_bits_[i];
    const auto c = static_cast<size_t>(popcount64(word));
    if (k >= c) {
      k -= c;
      continue;
    }
    for (; k > 0; --k) word &= word - 1;  // drop the k lowest set bits
    return static_cast<kv::WorkerSlot>(i * 64 + static_cast<size_t>(std::countr_zero(word)));
  }
  return ties_.empty() ? 0 : ties_[0];  // unreachable: n > 0
}

int32_t KvRouter::groupDepth(kv::WorkerSlot slot) const {
  const uint32_t k = slot / 64;
  for (const auto& grp : groups_.groups) {
    if (k < grp.lo || k >= grp.lo + grp.n) continue;
    if (((groups_.words[grp.offset + k - grp.lo] >> (slot % 64)) & 1) != 0) return grp.depth;
  }
  return 0;
}

// overlaps_ (by slot) from groups_, for the full pass.
void KvRouter::tableFromGroups() {
  kv::OverlapTable& t = overlaps_;
  const size_t n = index_.numWorkerSlots();
  if (t.stamp.size() < n) {
    t.stamp.resize(n, 0);
    t.blocks.resize(n, 0);
    t.weighted.resize(n, 0);
  }
  if (++t.epoch == 0) {
    std::fill(t.stamp.begin(), t.stamp.end(), 0);
    t.epoch = 1;
  }
  t.matched = groups_.matched;
  for (const auto& grp : groups_.groups) {
    for (uint32_t j = 0; j < grp.n; ++j) {
      for (uint64_t word = groups_.words[grp.offset + j]; word != 0; word &= word - 1) {
        const kv::WorkerSlot w = slotOf(grp.lo + j, word);
        t.stamp[w] = t.epoch;
        t.blocks[w] = grp.depth;
        t.weighted[w] = index_.runWeight(w, grp.depth);
      }
    }
  }
}

void KvRouter::remember(const std::string& request_id, const Pending& p) {
  if (auto it = pending_.find(request_id); it != pending_.end()) {
    it->second = p;
    return;
  }
  if (spare_nodes_.empty()) {
    pending_.emplace(request_id, p);
    return;
  }
  auto node = std::move(spare_nodes_.back());
  spare_nodes_.pop_back();
  node.key() = request_id;  // reuses the string's capacity
  node.mapped() = p;
  pending_.insert(std::move(node));
}

Result<RouteDecision> KvRouter::route(const RouteRequest& request) {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  flushEvents();
  const int64_t now = nowUs();
  index_.expirePredictions(now);
  auto model = by_model_.find(request.model_id);
  if (model == by_model_.end() || model->second.slots.empty()) {
    return unavailable("no worker serves model '" + request.model_id + "'");
  }
  const auto hashed = static_cast<int64_t>(request.block_hashes.size());
  const auto [chosen, overlap] = decide(model->second, request);

  WorkerState& w = workers_[chosen];
  const int32_t bs = w.block_size;
  Pending p;
  p.worker = chosen;
  p.blocks = std::max<int64_t>(hashed, (request.prompt_tokens + bs - 1) / bs);
  p.predicted_cached_tokens = std::min<int64_t>(int64_t{overlap} * bs, request.prompt_tokens);
  p.prefill_tokens = std::max<int64_t>(request.prompt_tokens - p.predicted_cached_tokens, 0);
  if (auto old = pending_.find(request.request_id); old != pending_.end()) release(old->second);
  w.local_active += p.blocks;
  w.since_report += p.blocks;
  w.queued_prefill += p.prefill_tokens;
  refresh(chosen);
  ++w.routed;
  remember(request.request_id, p);
  index_.predict(chosen, request.block_hashes, now);
  ++stats_.requests_routed;
  stats_.decision_latency.record(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  return RouteDecision{index_.workerId(chosen), overlap};
}

void KvRouter::release(Pending& p) {
  if (p.worker >= workers_.size()) return;
  WorkerState& w = workers_[p.worker];
  w.local_active = std::max<int64_t>(w.local_active - p.blocks, 0);
  w.since_report = std::max<int64_t>(w.since_report - p.blocks, 0);
  // The worker's next report will no longer count these blocks; do not wait for it.
  w.reported_used = std::max<int64_t>(w.reported_used - p.blocks, 0);
  if (w.have_report) w.finished_since_report += p.blocks;
  w.queued_prefill = std::max<int64_t>(w.queued_prefill - p.prefill_tokens, 0);
  refresh(p.worker);
  p.blocks = p.prefill_tokens = 0;
}

void KvRouter::onRequestFinished(const std::string& request_id) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  release(it->second);
  auto node = pending_.extract(it);
  if (spare_nodes_.size() < 4096) spare_nodes_.push_back(std::move(node));
}

void KvRouter::onPrefillCompleted(const std::string& request_id) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(request_id);
  if (it == pending_.end() || it->second.worker >= workers_.size()) return;
  WorkerState& w = workers_[it->second.worker];
  w.queued_prefill = std::max<int64_t>(w.queued_prefill - it->second.prefill_tokens, 0);
  it->second.prefill_tokens = 0;
  refresh(it->second.worker);
}

void KvRouter::onUsage(const std::string& request_id, int32_t cached_tokens) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  ++stats_.usage_reports;
  stats_.predicted_cached_tokens += it->second.predicted_cached_tokens;
  stats_.actual_cached_tokens += cached_tokens;
  stats_.abs_error_tokens += std::abs(it->second.predicted_cached_tokens - cached_tokens);
}

KvRouterStats KvRouter::stats() const {
  std::lock_guard lock(mu_);
  flushEvents();
  KvRouterStats s = stats_;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].present) s.routed_per_worker.emplace_back(infos_[i].id, workers_[i].routed);
  }
  s.index_hashes = index_.numHashes();
  s.index_entries = index_.numEntries();
  s.index_predictions = index_.numPredictions();
  s.index_bytes = index_.memoryBytes();
  return s;
}

int64_t KvRouter::activeBlocks(WorkerId worker) const {
  std::lock_guard lock(mu_);
  const auto slot = index_.findWorker(worker);
  return slot && *slot < workers_.size() ? active(workers_[*slot]) : 0;
}

int64_t KvRouter::queuedPrefillTokens(WorkerId worker) const {
  std::lock_guard lock(mu_);
  const auto slot = index_.findWorker(worker);
  return slot && *slot < workers_.size() ? workers_[*slot].queued_prefill : 0;
}

Result<std::unique_ptr<Router>> makeKvRouter(const RouterOptions& options) {
  if (!(options.overlap_weight >= 0) || !std::isfinite(options.overlap_weight)) {
    return invalidArgument("kv router: overlap_weight must be a finite number >= 0");
  }
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature)) {
    return invalidArgument("kv router: temperature must be a finite number >= 0");
  }
  if (!(options.busy_kv_fraction >= 0 && options.busy_kv_fraction <= 1)) {
    return invalidArgument("kv router: busy_kv_fraction must be in [0, 1]");
  }
  if (options.busy_prefill_tokens < 0) return invalidArgument("kv router: busy_prefill_tokens must be >= 0");
  if (!(options.queued_prefill_weight >= 0) || !std::isfinite(options.queued_prefill_weight)) {
    return invalidArgument("kv router: queued_prefill_weight must be a finite number >= 0");
  }
  return std::unique_ptr<Router>(new KvRouter(KvRouterOptions::from(options)));
}

}  // namespace turbine::router
