#include "mocker/simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <queue>

#include "kv/block_hash.h"
#include "mocker/mock_engine.h"

namespace turbine::mocker {

namespace {

enum class EventType : uint8_t { kStepDone, kArrival, kWorkerReady, kAutoscale, kDecodeLeg };

struct SimEvent {
  int64_t t_us;
  uint64_t order;
  EventType type;
  uint32_t index;  // worker or request
  bool operator>(const SimEvent& o) const {
    return t_us != o.t_us ? t_us > o.t_us : order > o.order;
  }
};

struct ReqState {
  int64_t arrival_us = 0;
  int64_t first_us = -1;
  int64_t last_us = -1;
  int32_t tokens = 0;
  int32_t prompt_tokens = 0;
  uint32_t worker = 0;  // agg or decode worker
  // Disaggregated: the prefill leg's worker and its prefix-cache hits (-1: prefilled locally),
  // the decode router's predicted overlap, and the decode leg waiting for the prefill leg.
  int32_t prefill_cached = -1;
  int32_t overlap_blocks = 0;
  std::unique_ptr<engine::Request> decode_leg;
};

enum class WorkerState : uint8_t { kStarting, kServing, kDraining, kRetired };
enum class Role : uint8_t { kAgg, kPrefill, kDecode };

const char* roleName(Role r) { return r == Role::kAgg ? "agg" : r == Role::kPrefill ? "prefill" : "decode"; }

struct Worker {
  std::unique_ptr<MockEngine> engine;
  Role role = Role::kAgg;
  WorkerState state = WorkerState::kStarting;
  int64_t start_us = 0;
  int64_t end_us = -1;  // retirement
  bool stepping = false;
  std::vector<std::pair<uint32_t, engine::Output>> outbox;
  std::vector<kv::KvEvent> events;
  uint64_t seq = 0;
  int64_t last_load_us = -1;
  double busy_us = 0;
  WorkerReport report;
};

Percentiles percentiles(std::vector<double>& v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
  };
  p.p50 = at(0.5);
  p.p90 = at(0.9);
  p.p99 = at(0.99);
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  return p;
}

// The prompt: input_length tokens when the row is consistent (ceil(input_length / block_size) ==
// len(hash_ids), as in every Mooncake row), so its last block is partial, as in the real
// request, and is neither cached nor hit (the engine caches full blocks only); otherwise, or
// with whole_block_prompts, len(hash_ids) * block_size + 1 tokens (every id a full block).
std::vector<int32_t> promptTokens(const TraceRequest& r, int32_t block_size, bool whole_blocks) {
  const auto bs = static_cast<int64_t>(block_size);
  const auto k = static_cast<int64_t>(r.hash_ids.size());
  const bool consistent = k > 0 && r.input_length > (k - 1) * bs && r.input_length <= k * bs;
  const int64_t n = consistent && !whole_blocks ? r.input_length : k * bs + 1;
  std::vector<int32_t> tokens(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < k; ++j) {
    // base-64 digits of the id (ids < 64^8), then a marker so id 0 differs from padding; a
    // partial last block keeps what fits.
    auto id = static_cast<uint64_t>(r.hash_ids[j]);
    const int64_t start = j * bs;
    const int64_t digits = std::min<int64_t>(8, bs - 1);
    for (int64_t d = 0; d < digits && start + d < n; ++d, id /= kMockVocab) {
      tokens[start + d] = static_cast<int32_t>(id % kMockVocab);
    }
    if (start + digits < n) tokens[start + digits] = kMockVocab - 1;
  }
  return tokens;
}

class Simulation {
 public:
  Simulation(const std::vector<TraceRequest>& trace, const SimulationOptions& o,
             router::Router& router, const SimulationHooks& hooks)
      : trace_(trace), o_(o), router_(router), hooks_(hooks), reqs_(trace.size()) {}

  SimulationReport run();

 private:
  void push(int64_t t, EventType type, uint32_t index) { queue_.push({t, order_++, type, index}); }
  void arrive(uint32_t i, int64_t now);
  bool startPrefillLeg(uint32_t i, const engine::Request& req, std::span<const kv::BlockHash> hashes, int64_t now);
  void prefillLegDone(uint32_t p, const engine::Output& out, uint32_t i, int64_t now);
  void decodeLeg(uint32_t i, int64_t now);
  void addToWorker(uint32_t w, uint32_t i, engine::Request req, int64_t now);
  void stepDone(uint32_t w, int64_t now);
  void startStep(uint32_t w, int64_t now);
  void deliver(uint32_t w, const engine::Output& out, uint32_t req, int64_t now);
  uint32_t startWorker(Role role, int64_t now);
  void workerReady(uint32_t w, int64_t now);
  void retire(uint32_t w, int64_t now);
  void autoscale(int64_t now);
  void resize(Role role, int32_t wanted, int64_t now);
  int32_t countWorkers(WorkerState state, Role role) const;
  router::Router& routerOf(const Worker& wk) { return wk.role == Role::kPrefill ? *hooks_.prefill_router : router_; }
  Role mainRole() const { return disagg_ ? Role::kDecode : Role::kAgg; }

  const std::vector<TraceRequest>& trace_;
  SimulationOptions o_;
  router::Router& router_;
  SimulationHooks hooks_;
  bool disagg_ = false;
  std::vector<Worker> workers_;
  std::vector<ReqState> reqs_;
  std::priority_queue<SimEvent, std::vector<SimEvent>, std::greater<>> queue_;
  uint64_t order_ = 0;
  kv::BlockHash root_ = 0;
  SimulationReport rep_;
  std::vector<double> ttft_, itl_, e2e_, alone_, wait_;
  int64_t total_blocks_ = 0, hit_blocks_ = 0, input_tokens_ = 0;
  int64_t end_us_ = 0;
  int64_t slo_met_ = 0;
  // The current autoscaling interval's sums.
  struct {
    int64_t arrivals = 0, completed = 0, first_tokens = 0, later_tokens = 0;
    double input_tokens = 0, output_tokens = 0, cached_tokens = 0, ttft_ms = 0, itl_ms = 0;
  } iv_;
  int64_t last_tick_us_ = 0;
};

uint32_t Simulation::startWorker(Role role, int64_t now) {
  MockEngineOptions eo;
  eo.model_id = o_.model_id;
  eo.block_size = o_.block_size;
  eo.num_blocks = o_.kv_blocks_per_worker;
  eo.host_blocks = o_.host_blocks_per_worker;
  eo.profile = o_.profile;
  const auto w = static_cast<uint32_t>(workers_.size());
  Worker& wk = workers_.emplace_back();
  wk.engine = std::make_unique<MockEngine>(eo);
  wk.role = role;
  wk.start_us = now;
  wk.report.worker_id = w + 1;
  wk.report.role = roleName(role);
  return w;
}

void Simulation::workerReady(uint32_t w, int64_t /*now*/) {
  Worker& wk = workers_[w];
  if (wk.state != WorkerState::kStarting) return;  // cancelled while starting
  wk.state = WorkerState::kServing;
  routerOf(wk).addWorker(
      router::WorkerInfo{w + 1, o_.model_id, roleName(wk.role), o_.block_size, o_.kv_blocks_per_worker});
}

void Simulation::retire(uint32_t w, int64_t now) {
  Worker& wk = workers_[w];
  wk.state = WorkerState::kRetired;
  wk.end_us = now;
}

int32_t Simulation::countWorkers(WorkerState state, Role role) const {
  int32_t n = 0;
  for (const Worker& wk : workers_) n += wk.state == state && wk.role == role ? 1 : 0;
  return n;
}

void Simulation::autoscale(int64_t now) {
  IntervalStats st;
  st.t_us = now;
  st.interval_s = static_cast<double>(now - last_tick_us_) / 1e6;
  st.arrivals = iv_.arrivals;
  st.completed = iv_.completed;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (iv_.completed > 0) {
    st.mean_input_tokens = iv_.input_tokens / static_cast<double>(iv_.completed);
    st.mean_output_tokens = iv_.output_tokens / static_cast<double>(iv_.completed);
    st.cached_fraction = iv_.input_tokens > 0 ? iv_.cached_tokens / iv_.input_tokens : 0;
  }
  st.mean_ttft_ms = iv_.first_tokens ? iv_.ttft_ms / static_cast<double>(iv_.first_tokens) : nan;
  st.mean_itl_ms = iv_.later_tokens ? iv_.itl_ms / static_cast<double>(iv_.later_tokens) : nan;
  st.serving = countWorkers(WorkerState::kServing, mainRole());
  st.starting = countWorkers(WorkerState::kStarting, mainRole());
  st.disaggregated = disagg_;
  st.prefill_serving = countWorkers(WorkerState::kServing, Role::kPrefill);
  st.prefill_starting = countWorkers(WorkerState::kStarting, Role::kPrefill);
  for (const Worker& wk : workers_) {
    if (wk.state == WorkerState::kServing || wk.state == WorkerState::kDraining) {
      (wk.role == Role::kPrefill ? st.prefill_waiting : st.waiting) += wk.engine->scheduler().numWaitingRequests();
    }
  }
  iv_ = {};
  last_tick_us_ = now;
  const FleetSize wanted = hooks_.autoscaler.decide(st);
  const int32_t wanted_main = std::max(wanted.workers, 1);
  const int32_t wanted_prefill = disagg_ ? std::max(wanted.prefill_workers, 0) : 0;
  resize(mainRole(), wanted_main, now);
  if (disagg_) resize(Role::kPrefill, wanted_prefill, now);
  TimelinePoint tp;
  tp.t_s = static_cast<double>(now) / 1e6;
  tp.serving = countWorkers(WorkerState::kServing, mainRole());
  tp.starting = countWorkers(WorkerState::kStarting, mainRole());
  tp.draining = countWorkers(WorkerState::kDraining, mainRole());
  tp.wanted = wanted_main;
  tp.prefill_serving = countWorkers(WorkerState::kServing, Role::kPrefill);
  tp.prefill_wanted = wanted_prefill;
  tp.arrivals_per_s = st.interval_s > 0 ? static_cast<double>(st.arrivals) / st.interval_s : 0;
  tp.mean_ttft_ms = st.mean_ttft_ms;
  tp.mean_itl_ms = st.mean_itl_ms;
  rep_.timeline.push_back(tp);
  int32_t alive = 0;
  for (const Worker& wk : workers_) alive += wk.state != WorkerState::kRetired ? 1 : 0;
  rep_.peak_workers = std::max(rep_.peak_workers, alive);
  if (!queue_.empty()) push(now + hooks_.autoscaler.interval_us, EventType::kAutoscale, 0);
}

void Simulation::resize(Role role, int32_t wanted, int64_t now) {
  int32_t alive = countWorkers(WorkerState::kServing, role) + countWorkers(WorkerState::kStarting, role);
  // Cancel the newest starting workers first: they have served nothing yet.
  for (auto w = static_cast<int64_t>(workers_.size()) - 1; w >= 0 && alive > wanted; --w) {
    if (workers_[w].state == WorkerState::kStarting && workers_[w].role == role) {
      retire(static_cast<uint32_t>(w), now);
      --alive;
    }
  }
  while (alive > wanted) {  // drain the serving workers with the least work
    int64_t best = -1;
    int64_t best_load = 0;
    for (size_t w = 0; w < workers_.size(); ++w) {
      if (workers_[w].state != WorkerState::kServing || workers_[w].role != role) continue;
      const auto& sc = workers_[w].engine->scheduler();
      const int64_t load = int64_t{sc.numRunning()} + sc.numWaiting();
      if (best < 0 || load < best_load) best = static_cast<int64_t>(w), best_load = load;
    }
    if (best < 0) break;
    const auto w = static_cast<uint32_t>(best);
    workers_[w].state = WorkerState::kDraining;
    routerOf(workers_[w]).removeWorker(w + 1);
    if (!workers_[w].stepping && !workers_[w].engine->hasWork()) retire(w, now);
    --alive;
  }
  for (; alive < wanted; ++alive) {
    push(now + hooks_.autoscaler.startup_us, EventType::kWorkerReady, startWorker(role, now));
  }
}

void Simulation::arrive(uint32_t i, int64_t now) {
  const TraceRequest& tr = trace_[i];
  engine::Request req;
  req.request_id = std::to_string(i);
  req.token_ids = promptTokens(tr, o_.block_size, o_.whole_block_prompts);
  req.sampling.temperature = 0.0f;
  req.stop.max_tokens = std::max(tr.output_length, 1);
  req.stop.ignore_eos = true;
  const auto hashes = kv::blockHashes(root_, req.token_ids, o_.block_size);
  total_blocks_ += static_cast<int64_t>(tr.hash_ids.size());
  ++iv_.arrivals;
  ReqState& r = reqs_[i];
  r.arrival_us = now;
  r.prompt_tokens = static_cast<int32_t>(req.token_ids.size());
  auto d = router_.route(router::RouteRequest{req.request_id, o_.model_id, hashes, r.prompt_tokens});
  if (!d) {
    ++rep_.failed;
    return;
  }
  input_tokens_ += r.prompt_tokens;
  const auto w = static_cast<uint32_t>(d->worker - 1);
  r.worker = w;
  r.overlap_blocks = d->overlap_blocks;
  if (disagg_) {
    const int64_t uncached = int64_t{r.prompt_tokens} - int64_t{d->overlap_blocks} * o_.block_size;
    if (uncached > o_.max_local_prefill_tokens) {
      if (startPrefillLeg(i, req, hashes, now)) {
        r.decode_leg = std::make_unique<engine::Request>(std::move(req));
        return;
      }
      ++rep_.prefill_fallbacks;
    }
  }
  addToWorker(w, i, std::move(req), now);
}

bool Simulation::startPrefillLeg(uint32_t i, const engine::Request& req, std::span<const kv::BlockHash> hashes,
                                 int64_t now) {
  router::Router& pr = *hooks_.prefill_router;
  auto d = pr.route(router::RouteRequest{req.request_id, o_.model_id, hashes, reqs_[i].prompt_tokens});
  if (!d) return false;  // no prefill worker now
  const auto p = static_cast<uint32_t>(d->worker - 1);
  engine::Request leg = req;
  leg.stop.max_tokens = 1;  // only the KV matters
  Worker& wk = workers_[p];
  Status st = wk.engine->add(std::move(leg), [this, p, i](engine::Output&& out) {
    workers_[p].outbox.emplace_back(i, std::move(out));
  });
  if (!st) {
    pr.onRequestFinished(req.request_id);
    return false;
  }
  ++wk.report.requests;
  wk.report.prompt_blocks += static_cast<int64_t>(trace_[i].hash_ids.size());
  if (!wk.stepping) startStep(p, now);
  return true;
}

void Simulation::prefillLegDone(uint32_t p, const engine::Output& out, uint32_t i, int64_t now) {
  if (!out.finished()) return;  // its one token is not the client's
  ReqState& r = reqs_[i];
  hooks_.prefill_router->onRequestFinished(std::to_string(i));
  engine::Request& leg = *r.decode_leg;
  if (!out.status.isOk() || !out.usage) {  // the decode worker prefills itself
    ++rep_.prefill_fallbacks;
    push(now, EventType::kDecodeLeg, i);
    return;
  }
  ++rep_.remote_prefills;
  r.prefill_cached = out.usage->cached_tokens;
  workers_[p].report.cached_blocks += r.prefill_cached / o_.block_size;
  // The blocks the decode worker lacks: all full blocks but the one with the last prompt token,
  // from the router's predicted overlap on (turbine worker's decode leg fetches the same).
  const int32_t max_hit = (r.prompt_tokens - 1) / o_.block_size;
  const int32_t from = std::clamp(r.overlap_blocks, 0, max_hit);
  int64_t moved_tokens = 0;
  if (from < max_hit) {
    const auto chain = kv::blockHashes(root_, leg.token_ids, o_.block_size);
    auto blocks = std::make_shared<engine::KvBlocks>(workers_[p].engine->exportBlocks(
        std::span<const kv::BlockHash>(chain.data() + from, static_cast<size_t>(max_hit - from))));
    const auto n = static_cast<int64_t>(blocks->hashes.size());
    rep_.transferred_blocks += n;
    moved_tokens = n * o_.block_size;
    if (n > 0) leg.kv_import = std::move(blocks);
  }
  const double transfer_us =
      static_cast<double>(moved_tokens) * o_.profile.onboard_us_per_token / o_.profile.speedup;
  push(now + static_cast<int64_t>(std::llround(transfer_us)), EventType::kDecodeLeg, i);
}

void Simulation::decodeLeg(uint32_t i, int64_t now) {
  ReqState& r = reqs_[i];
  engine::Request req = std::move(*r.decode_leg);
  r.decode_leg.reset();
  if (workers_[r.worker].state != WorkerState::kServing) {
    // Drained while the prefill leg ran: routed again (the import names its blocks by hash).
    router_.onRequestFinished(req.request_id);
    const auto hashes = kv::blockHashes(root_, req.token_ids, o_.block_size);
    auto d = router_.route(router::RouteRequest{req.request_id, o_.model_id, hashes, r.prompt_tokens});
    if (!d) {
      ++rep_.failed;
      return;
    }
    r.worker = static_cast<uint32_t>(d->worker - 1);
  }
  addToWorker(r.worker, i, std::move(req), now);
}

void Simulation::addToWorker(uint32_t w, uint32_t i, engine::Request req, int64_t now) {
  Worker& wk = workers_[w];
  ++wk.report.requests;
  if (reqs_[i].prefill_cached < 0) wk.report.prompt_blocks += static_cast<int64_t>(trace_[i].hash_ids.size());
  const std::string id = req.request_id;
  Status st = wk.engine->add(std::move(req), [this, w, i](engine::Output&& out) {
    workers_[w].outbox.emplace_back(i, std::move(out));
  });
  if (!st) {
    ++rep_.failed;
    router_.onRequestFinished(id);
    return;
  }
  if (!wk.stepping) startStep(w, now);
}

void Simulation::startStep(uint32_t w, int64_t now) {
  Worker& wk = workers_[w];
  auto d = wk.engine->step();
  const double us = d ? *d : o_.profile.step_base_us;
  const auto dur = std::max<int64_t>(static_cast<int64_t>(std::llround(us)), 1);
  wk.busy_us += static_cast<double>(dur);
  wk.stepping = true;
  auto ev = wk.engine->takeEvents();
  wk.events.insert(wk.events.end(), std::make_move_iterator(ev.begin()), std::make_move_iterator(ev.end()));
  push(now + dur, EventType::kStepDone, w);
}

void Simulation::deliver(uint32_t w, const engine::Output& out, uint32_t i, int64_t now) {
  ReqState& r = reqs_[i];
  const std::string id = std::to_string(i);
  for (size_t k = 0; k < out.token_ids.size(); ++k) {
    if (r.first_us < 0) {
      r.first_us = now;
      ttft_.push_back(static_cast<double>(now - r.arrival_us) / 1000.0);
      ++iv_.first_tokens;
      iv_.ttft_ms += ttft_.back();
      if (hooks_.on_prefill_done) hooks_.on_prefill_done(id);
    } else {
      itl_.push_back(static_cast<double>(now - r.last_us) / 1000.0);
      ++iv_.later_tokens;
      iv_.itl_ms += itl_.back();
    }
    r.last_us = now;
    ++r.tokens;
  }
  if (!out.finished()) return;
  if (out.usage) {
    // A remote prefill's hits are its prefill worker's (its imported blocks were computed there).
    const bool remote = r.prefill_cached >= 0;
    const int32_t cached = remote ? r.prefill_cached : out.usage->cached_tokens;
    const int32_t cached_blocks = cached / o_.block_size;
    hit_blocks_ += cached_blocks;
    if (!remote) workers_[w].report.cached_blocks += cached_blocks;
    // The router's accuracy: its prediction was about the decode worker's cache alone.
    if (hooks_.on_usage && !remote) hooks_.on_usage(id, out.usage->cached_tokens);
    if (r.first_us >= 0) {
      const double alone_ms = isolatedPrefillUs(o_.profile, cached, r.prompt_tokens - cached) / 1000.0;
      alone_.push_back(alone_ms);
      wait_.push_back(static_cast<double>(r.first_us - r.arrival_us) / 1000.0 - alone_ms);
    }
  }
  if (out.status.isOk()) {
    ++rep_.completed;
    e2e_.push_back(static_cast<double>(now - r.arrival_us) / 1000.0);
    ++iv_.completed;
    iv_.input_tokens += r.prompt_tokens;
    iv_.output_tokens += r.tokens;
    if (out.usage) iv_.cached_tokens += r.prefill_cached >= 0 ? r.prefill_cached : out.usage->cached_tokens;
    const double ttft_ms = static_cast<double>(r.first_us - r.arrival_us) / 1000.0;
    const double itl_ms = r.tokens > 1 ? static_cast<double>(r.last_us - r.first_us) / 1000.0 / (r.tokens - 1) : 0;
    if ((o_.slo_ttft_ms <= 0 || ttft_ms <= o_.slo_ttft_ms) && (o_.slo_itl_ms <= 0 || itl_ms <= o_.slo_itl_ms)) {
      ++slo_met_;
    }
  } else {
    ++rep_.failed;
  }
  rep_.output_tokens += r.tokens;
  end_us_ = std::max(end_us_, now);
  router_.onRequestFinished(id);
}

void Simulation::stepDone(uint32_t w, int64_t now) {
  Worker& wk = workers_[w];
  wk.stepping = false;
  auto outbox = std::move(wk.outbox);
  wk.outbox.clear();
  const bool draining = wk.state == WorkerState::kDraining;  // the router no longer knows it
  router::Router& router = routerOf(wk);
  if (!wk.events.empty() && !draining) {
    router.onKvEvents(kv::KvEventMessage{w + 1, wk.seq++, std::move(wk.events)});
  }
  wk.events.clear();
  for (auto& [i, out] : outbox) {
    if (wk.role == Role::kPrefill) {
      prefillLegDone(w, out, i, now);
    } else {
      deliver(w, out, i, now);
    }
  }
  if (draining) {
    if (wk.engine->hasWork()) {
      startStep(w, now);
    } else {
      retire(w, now);
    }
    return;
  }
  // Periodically while busy, and always when going idle (a change the router must see).
  if (!wk.engine->hasWork() || wk.last_load_us < 0 || now - wk.last_load_us >= o_.load_interval_us) {
    router.onLoad(wk.engine->load(w + 1, now / 1000));
    wk.last_load_us = now;
  }
  if (wk.engine->hasWork()) startStep(w, now);
}

SimulationReport Simulation::run() {
  const auto wall0 = std::chrono::steady_clock::now();
  root_ = kv::rootHash(o_.model_id, "");
  disagg_ = o_.prefill_workers > 0;
  workers_.reserve(static_cast<size_t>(o_.workers + o_.prefill_workers));
  for (int32_t w = 0; w < o_.workers; ++w) workerReady(startWorker(mainRole(), 0), 0);
  for (int32_t w = 0; w < o_.prefill_workers; ++w) workerReady(startWorker(Role::kPrefill, 0), 0);
  rep_.peak_workers = o_.workers + o_.prefill_workers;
  const double t0 = trace_.empty() ? 0 : trace_.front().timestamp_ms;
  for (uint32_t i = 0; i < trace_.size(); ++i) {
    const double t_ms = (trace_[i].timestamp_ms - t0) / o_.rate_scale;
    push(static_cast<int64_t>(std::llround(t_ms * 1000.0)), EventType::kArrival, i);
  }
  if (hooks_.autoscaler.decide && !queue_.empty()) {
    push(hooks_.autoscaler.interval_us, EventType::kAutoscale, 0);
  }
  while (!queue_.empty()) {
    const SimEvent e = queue_.top();
    queue_.pop();
    if (hooks_.virtual_now_us) *hooks_.virtual_now_us = e.t_us;
    switch (e.type) {
      case EventType::kArrival: arrive(e.index, e.t_us); break;
      case EventType::kStepDone: stepDone(e.index, e.t_us); break;
      case EventType::kWorkerReady: workerReady(e.index, e.t_us); break;
      case EventType::kAutoscale: autoscale(e.t_us); break;
      case EventType::kDecodeLeg: decodeLeg(e.index, e.t_us); break;
    }
  }
  rep_.requests = static_cast<int64_t>(trace_.size());
  rep_.makespan_s = static_cast<double>(end_us_) / 1e6;
  rep_.prefix_hit_ratio = total_blocks_ ? double(hit_blocks_) / double(total_blocks_) : 0;
  const HitBounds b =
      computeHitBounds(trace_, int64_t{o_.workers + o_.prefill_workers} * o_.kv_blocks_per_worker);
  rep_.pooled_oracle_hit_ratio = b.pooledRatio();
  rep_.infinite_cache_hit_ratio = b.infiniteRatio();
  rep_.pooled_optimal_hit_ratio = b.optimalRatio();
  rep_.ttft_ms = percentiles(ttft_);
  rep_.itl_ms = percentiles(itl_);
  rep_.e2e_ms = percentiles(e2e_);
  rep_.ttft_alone_ms = percentiles(alone_);
  rep_.ttft_wait_ms = percentiles(wait_);
  if (rep_.makespan_s > 0) {
    rep_.output_tokens_per_s = static_cast<double>(rep_.output_tokens) / rep_.makespan_s;
    rep_.input_tokens_per_s = static_cast<double>(input_tokens_) / rep_.makespan_s;
  }
  for (auto& wk : workers_) {
    rep_.preemptions += wk.engine->scheduler().counters().preemptions;
    const int64_t end = std::max(wk.end_us >= 0 ? wk.end_us : end_us_, wk.start_us);
    const auto life_us = static_cast<double>(end - wk.start_us);
    wk.report.busy_fraction = life_us > 0 ? wk.busy_us / life_us : 0;
    wk.report.start_s = static_cast<double>(wk.start_us) / 1e6;
    wk.report.end_s = static_cast<double>(end) / 1e6;
    rep_.worker_seconds += life_us / 1e6;
    rep_.workers.push_back(wk.report);
  }
  if (o_.slo_ttft_ms > 0 || o_.slo_itl_ms > 0) {
    rep_.slo_attainment = rep_.requests ? double(slo_met_) / double(rep_.requests) : 0;
  }
  rep_.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return rep_;
}

}  // namespace

Status validateSimulationOptions(const SimulationOptions& o) {
  if (o.workers < 1) return invalidArgument("--workers must be >= 1");
  if (o.block_size < 16) return invalidArgument("--block-size must be >= 16");
  if (o.kv_blocks_per_worker < 2) return invalidArgument("--kv-blocks-per-worker must be >= 2");
  if (o.host_blocks_per_worker < 0) return invalidArgument("--host-blocks-per-worker must be >= 0");
  if (!(o.rate_scale > 0) || !std::isfinite(o.rate_scale)) return invalidArgument("--rate-scale must be > 0");
  if (!(o.slo_ttft_ms >= 0) || !(o.slo_itl_ms >= 0)) return invalidArgument("SLO targets must be >= 0 ms");
  if (o.prefill_workers < 0) return invalidArgument("--prefill-workers must be >= 0");
  if (o.max_local_prefill_tokens < 0) return invalidArgument("--max-local-prefill-tokens must be >= 0");
  return validateTimingProfile(o.profile);
}

Result<SimulationReport> simulate(const std::vector<TraceRequest>& trace,
                                  const SimulationOptions& options, router::Router& router,
                                  const SimulationHooks& hooks) {
  TURBINE_RETURN_IF_ERROR(validateSimulationOptions(options));
  if (hooks.autoscaler.decide && (hooks.autoscaler.interval_us < 1 || hooks.autoscaler.startup_us < 0)) {
    return invalidArgument("autoscaler: interval must be > 0 and startup >= 0");
  }
  if (options.prefill_workers > 0 && hooks.prefill_router == nullptr) {
    return invalidArgument("a disaggregated fleet (prefill workers) needs a prefill router");
  }
  Simulation sim(trace, options, router, hooks);
  return sim.run();
}

}  // namespace turbine::mocker
