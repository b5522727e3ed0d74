#include "router/kv_router.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>

namespace turbine::router {

namespace {

int64_t steadyUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

kv::PrefixIndexOptions indexOptions(const KvRouterOptions& o) {
  kv::PrefixIndexOptions io;
  io.tier_weights = o.tier_weights;
  io.prediction_ttl_us = (o.use_kv_events ? o.prediction_ttl_ms : o.approx_ttl_ms) * 1000;
  io.prediction_cap = o.prediction_cap;
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
    : options_(options), index_(indexOptions(options)), rng_(options.seed) {}

int64_t KvRouter::nowUs() const { return options_.now_us ? options_.now_us() : steadyUs(); }

KvRouter::WorkerState& KvRouter::state(kv::WorkerSlot slot) {
  if (slot >= workers_.size()) {
    workers_.resize(slot + 1);
    infos_.resize(slot + 1);
    active_.resize(slot + 1, 0);
    block_size_.resize(slot + 1, 1);
  }
  return workers_[slot];
}

void KvRouter::addWorker(const WorkerInfo& worker) {
  std::lock_guard lock(mu_);
  const kv::WorkerSlot slot = index_.internWorker(worker.id);
  WorkerState& w = state(slot);
  if (w.present) {
    auto& v = by_model_[infos_[slot].model_id];
    v.erase(std::remove(v.begin(), v.end(), slot), v.end());
  }
  w.present = true;
  w.block_size = std::max(worker.block_size, 1);
  w.kv_blocks_total = worker.kv_blocks_total;
  infos_[slot] = worker;
  refresh(slot);
  by_model_[worker.model_id].push_back(slot);
}

void KvRouter::removeWorker(WorkerId worker) {
  std::lock_guard lock(mu_);
  const auto slot = index_.findWorker(worker);
  if (!slot) return;
  WorkerState& w = state(*slot);
  if (w.present) {
    auto& v = by_model_[infos_[*slot].model_id];
    v.erase(std::remove(v.begin(), v.end(), *slot), v.end());
  }
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

void KvRouter::applyMessage(kv::WorkerSlot slot, const kv::KvEventMessage& msg) {
  WorkerState& w = state(slot);
  if (w.have_seq && msg.seq != w.next_seq) {
    ++stats_.seq_gaps;
    if (options_.on_seq_gap) options_.on_seq_gap(msg.worker_id, w.next_seq, msg.seq);
  }
  w.have_seq = true;
  w.next_seq = msg.seq + 1;
  for (const auto& e : msg.events) {
    index_.apply(slot, e);
    ++stats_.events_applied;
    if (const auto* s = std::get_if<kv::BlockStored>(&e)) stats_.blocks_applied += s->block_hashes.size();
    if (const auto* r = std::get_if<kv::BlockRemoved>(&e)) stats_.blocks_applied += r->block_hashes.size();
  }
}

void KvRouter::onKvEvents(const kv::KvEventMessage& msg) {
  std::lock_guard lock(mu_);
  ++stats_.event_messages;
  if (!options_.use_kv_events) return;
  applyMessage(index_.internWorker(msg.worker_id), msg);
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
  active_[slot] = active(workers_[slot]);
  block_size_[slot] = workers_[slot].block_size;
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
    busy_.clear();
    for (kv::WorkerSlot slot : slots) {
      const WorkerState& w = workers_[slot];
      (busy(w) ? busy_ : candidates_).push_back(Candidate{slot, costOf(slot, w), active(w)});
    }
    stats_.busy_skips += busy_.size();
    const auto& pool = candidates_.empty() ? busy_ : candidates_;
    return pool[pick(pool)].worker;
  }
  const bool thresholds = options_.busy_kv_fraction > 0 || options_.busy_prefill_tokens > 0;
  const double ow = options_.overlap_weight;
  const double qpw = ow * options_.queued_prefill_weight;
  double best_cost = 0;
  int64_t best_active = 0;
  ties_.clear();
  for (int pass = 0; pass < 2 && ties_.empty(); ++pass) {
    size_t skipped = 0;
    for (kv::WorkerSlot slot : slots) {
      if (pass == 0 && thresholds && busy(workers_[slot])) {
        ++skipped;
        continue;
      }
      if (block_size_[slot] != last_bs) {  // workers of one model share a block size
        last_bs = block_size_[slot];
        blocks = std::max<int64_t>(hashed, (prompt_tokens + last_bs - 1) / last_bs);
      }
      const int64_t act = active_[slot];
      double cost = ow * (static_cast<double>(blocks) - overlaps_.weightedOf(slot)) +
                    static_cast<double>(act);
      if (qpw > 0) cost += qpw * static_cast<double>(workers_[slot].queued_prefill) / last_bs;
      if (ties_.empty() || cost < best_cost || (cost == best_cost && act < best_active)) {
        best_cost = cost;
        best_active = act;
        ties_.clear();
        ties_.push_back(slot);
      } else if (cost == best_cost && act == best_active) {
        ties_.push_back(slot);
      }
    }
    if (pass == 0) stats_.busy_skips += skipped;
  }
  if (ties_.size() == 1) return ties_[0];
  return ties_[std::uniform_int_distribution<size_t>(0, ties_.size() - 1)(rng_)];
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
  const int64_t now = nowUs();
  index_.expirePredictions(now);
  auto model = by_model_.find(request.model_id);
  if (model == by_model_.end() || model->second.empty()) {
    return unavailable("no worker serves model '" + request.model_id + "'");
  }
  index_.findOverlaps(request.block_hashes, overlaps_);
  const auto hashed = static_cast<int64_t>(request.block_hashes.size());
  const kv::WorkerSlot chosen = choose(model->second, hashed, request.prompt_tokens);

  WorkerState& w = workers_[chosen];
  const int32_t bs = w.block_size;
  const int32_t overlap = overlaps_.blocksOf(chosen);
  Pending p;
  p.worker = chosen;
  p.blocks = std::max<int64_t>(hashed, (request.prompt_tokens + bs - 1) / bs);
  p.predicted_cached_tokens = std::min<int64_t>(int64_t{overlap} * bs, request.prompt_tokens);
  p.prefill_tokens = std::max<int64_t>(request.prompt_tokens - p.predicted_cached_tokens, 0);
  if (auto old = pending_.find(request.request_id); old != pending_.end()) release(old->second);
  w.local_active += p.blocks;
  w.since_report += p.blocks;
  refresh(chosen);
  w.queued_prefill += p.prefill_tokens;
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
