// KvRouter: the KV-cache-aware routing policy (DESIGN.md §4 step 2, issue 5 §3).
//
//   overlap(w)  = tier-weighted length of the longest run of the prompt's leading blocks that
//                 worker w holds (kv::PrefixIndex; device 1.0, host 0.75, disk 0.5, remote 0.25)
//   cost(w)     = overlap_weight * (prompt_blocks - overlap(w)) + active_blocks(w)
//                 [+ overlap_weight * queued_prefill_weight * queued prefill blocks(w), optional]
//   pick        = argmin cost; ties: fewer active blocks, then uniformly at random (seeded).
//                 temperature T > 0: sample w with probability ~ exp(-(cost(w) - min cost) / T).
// Workers over a busy threshold (active blocks above busy_kv_fraction of their KV blocks, or
// queued prefill tokens above busy_prefill_tokens) are skipped, unless every worker is busy
// (then all compete: a request is never refused for load).
//
// Active blocks: route() counts the request's prompt blocks on the chosen worker at once and
// marks its blocks as predicted in the index (so a burst of requests sharing a prefix follows
// the first one before any event arrives); onRequestFinished() releases them. With load
// metrics, active_blocks(w) = max(own count, reported kv_blocks_used + blocks routed since the
// report), which converges when several frontends route to the same workers.
// Approximate mode (use_kv_events = false): KV events are ignored and the index holds only the
// router's own predictions, with approx_ttl_ms and prediction_cap.
//
// Decision path (temperature 0): the index walk returns the workers grouped by run length as
// bitsets; groups are costed deepest first until overlap_weight * (blocks - depth) + the lowest
// active count exceeds the best cost found, and the workers that hold nothing of the prompt come
// from per-model buckets of non-busy workers keyed by active blocks. The result is the full
// pass's (`exhaustive = true`, also used for temperature > 0, mixed block sizes, tier weights
// above 1, or every worker busy): same minimum, same ties, same seeded draw in slot order.
//
// Thread safety: every method may be called from any thread (one internal mutex).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kv/prefix_index.h"
#include "router/router.h"

namespace turbine::router {

struct KvRouterOptions {
  double overlap_weight = kDefaultOverlapWeight;  // router.h says why 8
  double temperature = 0.0;
  bool use_kv_events = true;
  uint64_t seed = 0;
  // Busy thresholds; <= 0 turns one off.
  double busy_kv_fraction = 0.0;     // of the worker's kv_blocks_total (needs it > 0)
  int64_t busy_prefill_tokens = 0;   // prompt tokens routed there whose prefill is not done
  // Optional term (NVIDIA Dynamo's cost counts it; 0 keeps DESIGN.md §4's formula): adds
  // overlap_weight * queued_prefill_weight * (prefill tokens queued on w / block size) to cost(w),
  // so a worker's pending prefill work competes with the request's own uncached blocks.
  double queued_prefill_weight = 0.0;
  // Predictions: how long the router trusts its own routing before events confirm it.
  int64_t prediction_ttl_ms = 10'000;    // with KV events
  int64_t approx_ttl_ms = 120'000;       // approximate mode
  size_t prediction_cap = 1 << 22;       // (worker, block) predictions at most
  // Distinct block hashes the index is sized for at construction (0: it starts small and doubles
  // as it grows, moving its table a 4 KiB page at a time over the following inserts).
  size_t index_blocks = 0;
  std::array<double, kv::kNumTiers> tier_weights = {1.0, 0.75, 0.5, 0.25};
  // true: every decision costs every worker of the model (the reference path). false: at
  // temperature 0 the pruned decision looks only at the workers that can win (same result).
  bool exhaustive = false;
  // Clock in microseconds (monotonic); default steady_clock. The simulator injects virtual time.
  std::function<int64_t()> now_us;
  // Called (under the router's lock: post, do not block) when a worker's seq jumps; the events
  // are applied anyway. The fleet's event plane asks the worker for a replay here.
  std::function<void(WorkerId, uint64_t expected_seq, uint64_t got_seq)> on_seq_gap;

  static KvRouterOptions from(const RouterOptions& options);
};

// Decision latency histogram: 8 sub-buckets per power of two of nanoseconds.
class LatencyHistogram {
 public:
  void record(int64_t ns);
  // Upper bound of the bucket holding quantile q in [0, 1]; 0 when empty.
  int64_t quantileNs(double q) const;
  uint64_t count() const { return count_; }
  static constexpr int kBuckets = 64 * 8;

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
};

struct KvRouterStats {
  std::vector<std::pair<WorkerId, uint64_t>> routed_per_worker;
  uint64_t requests_routed = 0;
  uint64_t event_messages = 0;
  uint64_t events_applied = 0;   // stored/removed/cleared events
  uint64_t blocks_applied = 0;   // block hashes in them
  uint64_t seq_gaps = 0;
  uint64_t busy_skips = 0;       // workers skipped as busy, summed over decisions
  // Accuracy: predicted overlap (tokens) vs cached_tokens reported in usage.
  uint64_t usage_reports = 0;
  int64_t predicted_cached_tokens = 0;
  int64_t actual_cached_tokens = 0;
  int64_t abs_error_tokens = 0;
  size_t index_hashes = 0;
  size_t index_entries = 0;
  size_t index_predictions = 0;
  size_t index_bytes = 0;
  LatencyHistogram decision_latency;
};

class KvRouter : public Router {
 public:
  explicit KvRouter(const KvRouterOptions& options);

  void addWorker(const WorkerInfo& worker) override;
  void removeWorker(WorkerId worker) override;
  void onKvEvents(const kv::KvEventMessage& msg) override;
  void onLoad(const kv::LoadMetrics& load) override;
  Result<RouteDecision> route(const RouteRequest& request) override;
  void onRequestFinished(const std::string& request_id) override;

  // The request's prefill is done: its tokens leave the worker's queued-prefill count.
  void onPrefillCompleted(const std::string& request_id);
  // Usage reported back for a routed request (before onRequestFinished): accuracy metrics.
  void onUsage(const std::string& request_id, int32_t cached_tokens);

  KvRouterStats stats() const;
  // Router's current view of a worker's active blocks (for tests and load displays).
  int64_t activeBlocks(WorkerId worker) const;
  int64_t queuedPrefillTokens(WorkerId worker) const;

 private:
  // Per worker slot; the fields route() reads for every worker come first (one cache line).
  struct WorkerState {
    int64_t local_active = 0;      // blocks of requests this router routed there, unfinished
    int64_t since_report = 0;      // blocks routed there since the last load report
    int64_t reported_used = 0;
    // Blocks of requests that finished since the last load report. Reports travel on the event
    // plane and final chunks on the request plane, so the next report may have been taken before
    // the finish: it is read as `used - finished_since_report` (a later report is exact again).
    int64_t finished_since_report = 0;
    int64_t queued_prefill = 0;
    int32_t block_size = 1;        // max(info.block_size, 1)
    int32_t kv_blocks_total = 0;
    bool have_report = false;
    bool present = false;
    bool have_seq = false;
    uint64_t next_seq = 0;
    uint64_t routed = 0;
  };
  struct Pending {
    kv::WorkerSlot worker = 0;
    int64_t blocks = 0;
    int64_t prefill_tokens = 0;
    int64_t predicted_cached_tokens = 0;
  };
  struct Candidate {
    kv::WorkerSlot worker;
    double cost;
    int64_t active;
  };
  using PendingMap = std::unordered_map<std::string, Pending>;
  static constexpr double kSkipped = std::numeric_limits<double>::infinity();
  // Non-busy workers of a model with the same active blocks, as a bitset over slots.
  struct Bucket {
    std::vector<uint64_t> bits;
    size_t count = 0;
  };
  using Buckets = std::map<int64_t, Bucket>;
  // A model's workers: slots in ascending order (the order ties are drawn in), and the non-busy
  // ones filed by active blocks (the pruned decision's workers that hold nothing of a prompt).
  struct ModelWorkers {
    std::vector<kv::WorkerSlot> slots;
    Buckets ready;
    std::vector<Buckets::node_type> spare;  // emptied bucket nodes, reused
    size_t busy = 0;                         // filed as busy
    bool mixed_block_sizes = false;
  };
  // Where a slot is filed in its model's buckets (refresh() keeps it current).
  struct Filing {
    ModelWorkers* model = nullptr;
    bool filed = false;
    bool busy = false;
    int64_t active = 0;
  };
  struct Best {
    double cost = kSkipped;
    int64_t active = std::numeric_limits<int64_t>::max();
  };

  int64_t nowUs() const;
  WorkerState& state(kv::WorkerSlot slot);
  int64_t active(const WorkerState& w) const;
  // After any change of a worker's active blocks, queued prefill, busy state or block size:
  // the dense per-slot copies and its filing. Code that changes them must call it.
  void refresh(kv::WorkerSlot slot);
  void unfile(kv::WorkerSlot slot);
  void file(kv::WorkerSlot slot);
  void joinModel(kv::WorkerSlot slot, const std::string& model);
  void leaveModel(kv::WorkerSlot slot);
  void noteBlockSizes(ModelWorkers& m);
  bool busy(const WorkerState& w) const;
  void release(Pending& p);
  size_t pick(const std::vector<Candidate>& c);
  // The chosen worker and its overlap (blocks) for a request of model m.
  std::pair<kv::WorkerSlot, int32_t> decide(ModelWorkers& m, const RouteRequest& request);
  bool prunable(const ModelWorkers& m) const;
  bool choosePruned(ModelWorkers& m, int64_t hashed, int32_t prompt_tokens, kv::WorkerSlot& chosen);
  void consider(Best& best, kv::WorkerSlot w, double cost, int64_t act);
  bool scanGroups(const ModelWorkers& m, double blocks, double amin, Best& best);
  bool scanBigGroup(const ModelWorkers& m, const kv::OverlapGroups::Group& grp, double base, Best& best);
  const Bucket* scanOutside(const ModelWorkers& m, double blocks, Best& best);
  kv::WorkerSlot drawTie(bool bits);
  int32_t groupDepth(kv::WorkerSlot slot) const;
  void tableFromGroups();
  // Cost of every worker of `slots`, argmin with ties (temperature 0) or softmax sample.
  kv::WorkerSlot choose(const std::vector<kv::WorkerSlot>& slots, int64_t hashed, int32_t prompt_tokens);
  double costPass(const std::vector<kv::WorkerSlot>& slots, int64_t hashed, int32_t prompt_tokens,
                  bool skip_busy);
  void remember(const std::string& request_id, const Pending& p);
  // Moves a worker's per-slot state to another slot (its cache cleared: PrefixIndex::renewWorker).
  void moveWorker(kv::WorkerSlot from, kv::WorkerSlot to);
  // Sequence check and stats of one message; buffers its events for the index.
  void noteMessage(kv::WorkerSlot slot, const kv::KvEventMessage& msg);
  // Applies the buffered events. Every method that reads the index calls it first.
  void flushEvents() const;

  KvRouterOptions options_;
  bool unit_weights_ = true;  // every tier weight <= 1 (the pruned decision's bound holds)
  mutable std::mutex mu_;
  // KV events wait in a buffer until a round's worth of blocks (kv::PrefixIndex::kRound) has
  // arrived or something reads the index (a decision, stats, a worker joining or leaving), so
  // consecutive messages share the index's memory rounds: a message of a few blocks (a decode
  // step's) otherwise pays two memory latencies for them alone. Reads see every event noted
  // before them, in order. Mutable: stats() applies them (the events are already the router's
  // state; only their application is deferred).
  mutable kv::PrefixIndex index_;
  mutable std::vector<kv::PrefixIndex::FlatEvent> pending_events_;
  mutable std::vector<kv::BlockHash> pending_hashes_;
  std::vector<WorkerState> workers_;  // by index slot
  std::vector<WorkerInfo> infos_;     // by index slot
  // Dense copies read by the cost loops (by slot): active(workers_[slot]), its block size, its
  // queued-prefill term, busy(workers_[slot]), and its filing.
  std::vector<int64_t> active_;
  std::vector<int32_t> block_size_;
  std::vector<double> qterm_;
  std::vector<uint8_t> busy_;
  std::vector<Filing> filed_;
  std::unordered_map<std::string, ModelWorkers> by_model_;  // nodes stable: filed_ points at them
  PendingMap pending_;
  std::vector<PendingMap::node_type> spare_nodes_;  // recycled: no allocation per decision
  std::mt19937_64 rng_;
  KvRouterStats stats_;
  // route() scratch
  kv::OverlapGroups groups_;
  kv::OverlapTable overlaps_;
  std::vector<double> costs_;
  std::vector<Candidate> candidates_;
  std::vector<Candidate> busy_candidates_;
  std::vector<kv::WorkerSlot> ties_;
  std::vector<uint64_t> matched_;
  std::vector<uint64_t> tie_bits_;
};

// The `kv` policy of makeRouter (RouterOptions' kv fields; the rest at KvRouterOptions' defaults).
Result<std::unique_ptr<Router>> makeKvRouter(const RouterOptions& options);

}  // namespace turbine::router
