// PrefixIndex: the router's global view of which workers hold which KV blocks, and on which tiers
// (DESIGN.md §3.2, §4 step 2). Fed by KV events (stored / removed / cleared) and by the router's
// own predictions; answers, for a request's chained block hashes, every worker's overlap: the
// longest run of leading blocks it holds on any tier, plus a tier-weighted score of that run.
//
// Layout (memory-lean, 10M blocks x 1,000 workers): one table of 16-byte slots keyed by block hash,
// in lines of 4 slots (64 bytes). A hash lives in one of two candidate lines (two-choice hashing:
// the first line from the top bits of a multiplicative hash, the second another line of the same 4
// KiB page): a new hash goes to its first line while that has room, else to the second, else
// residents move to their other line first (one resident, else a bounded random walk); the table
// doubles when 3/4 full, or when no such move frees a slot (a page's lines can fill first: at 8M
// slots a doubling came at 0.73 load). A doubling moves the entries a 4 KiB page at a time (old
// page p feeds new pages 2p and 2p + 1, since both lines of a hash are in its page), so no single
// call pays for the whole table: a page moves when an insert finds no room in it without a walk,
// and one more every 16 inserts, every 4 overlap queries and every event round; lookups read the
// old table for pages not moved yet (a bit per old page; a lookup then costs up to 1.3x). Once the
// table has doubled, the next one is mapped and pre-faulted by a helper thread when it passes 65%
// load (this guest's 2 MiB page faults cost ~3 ms each). A lookup reads at most two lines, both
// requested up front, and an erase only clears its slot (an empty slot is Slot{}). A slot stores
// its only holder inline as `worker_slot << 5 | tier_mask`; a hash held by 2+ workers points into a
// pool of holder sets: a small vector sorted by worker, or, for popular blocks (held by at least
// kDenseMin workers and 1/16 of all worker slots), a dense form: a bitset of holders plus one mask
// byte per worker slot. The pool and the sets' storage live on 2 MiB pages (HugePageAllocator,
// SmallBlockArena), so neither a growing index nor a random read of them pays a 4 KiB page's fault
// or TLB miss. Bits 0..3 of a mask are the tiers (kv::Tier), bit 4 is a router prediction ("routed
// there, events not seen yet"). Because block hashes are chained, a hash names its whole prefix, so
// no tree is needed.
//
// Overlap walk: a bitset of the workers still matching, intersected block by block with each
// block's holders (64 workers per word for dense blocks), stopping at the first block that no
// matching worker holds; a worker leaves the set with its run length. Blocks are resolved in
// rounds of 32, stage by stage (slots, holder sets, their data), so the misses overlap.
// Weights: a block counts 1.0 for a holder whose best tier weight is 1 (device, prediction);
// only "partial" holders (best weight != 1) are visited one by one. No heap allocation per
// query in steady state.
//
// Predictions expire: each has a last-touch time (PredictionLru); the oldest are dropped when
// older than the TTL or when more than `prediction_cap` are live. Or, with
// refresh_predictions false (KV events), each decision's are one record (PredictionLog), dropped
// TTL after the decision. A stored or removed event for (worker, hash) replaces the prediction
// with the truth.
//
// Workers are interned to dense slots (0..); clearWorker() scans the whole table (O(capacity)).
// A worker leaving (releaseWorker) or clearing its cache (renewWorker: AllCleared, the worker
// continuing under a fresh slot) is swept from a table of kSweepAfter
// slots or more in slices of kSweepSlots per event round or overlap query, so routing does not
// wait for the scan (82 ms in router_bench's 10M-entry index; a slice adds ~2.5 us to its call,
// and 32,768 of them sweep that table): until its sweep is done, queries ignore the slot, its
// entries still count in numHashes() / numEntries(), and the slot is not reused; with
// refresh_predictions it is reused only once its keys in the PredictionLru have expired too.
//
// Thread safety: not thread-safe (the router holds one lock around it).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/prefetch.h"
#include "kv/block_hash.h"
#include "kv/huge_page_allocator.h"
#include "kv/kv_events.h"
#include "kv/prediction_log.h"
#include "kv/prediction_lru.h"

namespace turbine::kv {

using WorkerSlot = uint32_t;

struct PrefixIndexOptions {
  // Overlap weight of a block per tier (device, host, disk, remote); a predicted block counts as
  // device. A block on several tiers counts its best.
  std::array<double, kNumTiers> tier_weights = {1.0, 0.75, 0.5, 0.25};
  // A prediction lives this long after its last touch (with refresh_predictions: at least 15/16
  // of it, touches within TTL / 16 of the last recorded one being coalesced).
  int64_t prediction_ttl_us = 30'000'000;
  size_t prediction_cap = 1 << 22;         // live predictions at most (oldest dropped first)
  // How predictions age. true: each (block, worker) has its last-touch time (PredictionLru); a
  // prediction made again lives on. Approximate mode needs this: its index is nothing but
  // predictions, and a reused prefix must stay. false (with KV events): a decision's new
  // predictions are one record (PredictionLog), dropped when the record is older than the TTL
  // (or when more than prediction_cap are live, or the log holds more than prediction_cap
  // hashes); one append per decision instead of a table entry per block and a lookup per event.
  bool refresh_predictions = true;
  size_t initial_capacity = 1024;          // table slots (rounded up to a power of two)
};

struct WorkerOverlap {
  WorkerSlot worker = 0;
  int32_t blocks = 0;    // longest run of leading blocks held on any tier (or predicted)
  double weighted = 0;   // sum over that run of the best tier weight of each block
};

// Overlaps by worker slot, for callers that look at every worker (the router's cost loop): an
// entry is valid when its stamp equals `epoch` (else the worker holds nothing of the prompt), so
// nothing is cleared between queries.
struct OverlapTable {
  std::vector<uint32_t> stamp;
  std::vector<int32_t> blocks;
  std::vector<double> weighted;
  uint32_t epoch = 0;
  size_t matched = 0;  // workers with an overlap in the last query
  bool has(WorkerSlot w) const { return w < stamp.size() && stamp[w] == epoch; }
  int32_t blocksOf(WorkerSlot w) const { return has(w) ? blocks[w] : 0; }
  double weightedOf(WorkerSlot w) const { return has(w) ? weighted[w] : 0.0; }
};

// Overlaps grouped by run length, for callers that prune (the router's decision): the workers
// whose run is `depth` blocks long form a bitset over worker slots, words [lo, lo + n) stored at
// words[offset..]. Groups come in ascending depth; workers holding not even the first block are in
// no group. A worker's weighted run is depth unless `partial` (some block held only on a tier of
// weight != 1): then PrefixIndex::runWeight() has it, until the next query.
struct OverlapGroups {
  struct Group {
    int32_t depth = 0;
    uint32_t lo = 0;
    uint32_t n = 0;
    uint32_t offset = 0;
  };
  std::vector<Group> groups;
  std::vector<uint64_t> words;
  size_t matched = 0;
  bool partial = false;
};

class PrefixIndex {
 public:
  explicit PrefixIndex(const PrefixIndexOptions& options = {});

  // Dense slot of a worker, created on first use; stable until releaseWorker().
  WorkerSlot internWorker(WorkerId worker);
  std::optional<WorkerSlot> findWorker(WorkerId worker) const;
  WorkerId workerId(WorkerSlot slot) const { return slot_ids_[slot]; }
  size_t numWorkerSlots() const { return slot_ids_.size(); }
  // Forgets the worker at once (queries no longer report it) and clears its entries, then or
  // (large tables) in slices over the following calls; its slot is recycled when they are gone.
  void releaseWorker(WorkerId worker);
  // Drops every entry of the worker (an AllCleared event) and returns the slot that names it from
  // now on. On a table of kSweepAfter slots or more the worker gets a fresh slot and its old one
  // is swept as a released worker's, so the caller does not wait for a scan of the table (12-80
  // ms at 10M entries); a caller holding per-slot state must move it. With kMaxSweeps sweeps
  // already running, or on a smaller table, the worker keeps its slot and the table is scanned.
  WorkerSlot renewWorker(WorkerId worker);
  static constexpr size_t kMaxSweeps = 16;
  // Released (or renewed) workers' old slots whose entries are still being swept.
  size_t sweepingWorkers() const { return sweeping_.size(); }
  // Swept slots not recycled yet: their predictions (approximate mode) have not all expired.
  size_t agingWorkers() const { return aging_.size(); }
  static constexpr size_t kSweepAfter = size_t{1} << 16;  // table slots: smaller ones at once
  static constexpr size_t kSweepSlots = 512;              // slots per slice (8 KiB)
  // Slices are whole pages: a resident moved to its other line stays in its page, so between
  // slices no entry can move from ahead of the sweep to behind it.
  static_assert(kSweepSlots % 256 == 0 && kSweepAfter % kSweepSlots == 0);

  // Applies one event of `worker` (stored/removed on a tier replace any prediction).
  void apply(WorkerSlot worker, const KvEvent& event);
  // Applies events of several workers in order, as apply() one by one would; their blocks'
  // memory is requested in rounds of 64 blocks across events (a round waits about one memory
  // latency per stage, whether it has 64 blocks or a few).
  struct WorkerEvent {
    WorkerSlot worker;
    const KvEvent* event;
  };
  void apply(std::span<const WorkerEvent> events);
  // The same for events kept in flat form by a caller that buffers them (no KvEvent objects): a
  // stored or removed event's hashes are hashes[begin, end).
  struct FlatEvent {
    enum class Kind : uint8_t { kStored, kRemoved, kCleared };
    WorkerSlot worker = 0;
    Kind kind = Kind::kStored;
    Tier tier = Tier::kDevice;
    uint32_t begin = 0, end = 0;
  };
  void apply(std::span<const FlatEvent> events, std::span<const BlockHash> hashes);
  // Blocks per round of apply(): a caller that buffers events gains nothing beyond this many.
  static constexpr size_t kRound = 64;
  void addBlocks(WorkerSlot worker, std::span<const BlockHash> hashes, Tier tier);
  void removeBlocks(WorkerSlot worker, std::span<const BlockHash> hashes, Tier tier);
  // Every entry of the worker, predictions included, is dropped.
  void clearWorker(WorkerSlot worker);

  // Marks `hashes` as predicted on `worker` at time now_us (refreshing their TTL); hashes the
  // worker holds on a real tier are left alone.
  void predict(WorkerSlot worker, std::span<const BlockHash> hashes, int64_t now_us);
  // Drops predictions older than the TTL, and the oldest beyond the cap.
  void expirePredictions(int64_t now_us);

  // Overlaps of every worker holding at least the first block; `out` is overwritten (any
  // order). Not const: uses scratch arrays.
  void findOverlaps(std::span<const BlockHash> hashes, std::vector<WorkerOverlap>& out);
  // The same into a table by worker slot (no per-worker list is built).
  void findOverlaps(std::span<const BlockHash> hashes, OverlapTable& table);
  // The same as groups of workers by run length (a few words per group, nothing per worker).
  void findOverlapGroups(std::span<const BlockHash> hashes, OverlapGroups& out);
  // Weighted run of a worker that the last query reported with run length `depth`.
  double runWeight(WorkerSlot w, int32_t depth) const { return weightedRun(w, depth); }

  // The tier mask (bit t = kv::Tier t, bit 4 = predicted) of `hash` on `worker`; 0 if absent.
  uint32_t mask(BlockHash hash, WorkerSlot worker) const;

  size_t numHashes() const { return size_; }          // distinct block hashes indexed
  size_t numEntries() const { return num_entries_; }  // (hash, worker) pairs, predictions too
  size_t numPredictions() const { return num_predictions_; }
  size_t numDenseHashes() const { return num_dense_; }  // hashes whose holders are a bitset
  size_t blocksOf(WorkerSlot worker) const { return worker_entries_[worker]; }
  // Bytes held by the table, holder vectors, predictions and per-worker arrays.
  size_t memoryBytes() const;
  size_t tableSlots() const { return table_.size(); }
  // A doubling is under way: some entries are still in the previous table.
  bool growing() const { return old_.data() != nullptr; }

  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;
  ~PrefixIndex();

  static constexpr uint32_t kPredictedBit = 1u << kNumTiers;

 private:
  struct Slot {
    BlockHash hash = 0;
    uint32_t holder = 0;              // worker << 5 | mask, when overflow == kNoOverflow
    uint32_t overflow = kNoOverflow;  // holders(overflow) when 2+ holders
  };
  // The holders of a hash with 2+ of them: sorted list, or dense (bitset + mask per slot).
  struct Holders {
    // Their storage is on huge pages (SmallBlockArena says why). list: worker << 5 | mask,
    // sorted by worker (when !dense).
    std::vector<uint32_t, HugePageAllocator<uint32_t>> list;
    std::vector<uint64_t, HugePageAllocator<uint64_t>> bits;  // holders by worker slot (dense)
    std::vector<uint8_t, HugePageAllocator<uint8_t>> masks;   // mask by worker slot (dense)
    uint32_t count = 0;           // holders (when dense)
    uint32_t partial = 0;         // holders whose mask weight != 1 (when dense)
    bool dense = false;
  };
  static constexpr uint32_t kNoOverflow = 0xFFFFFFFFu;
  static constexpr uint32_t kMaskBits = 5;
  static constexpr uint32_t kMaskAll = (1u << kMaskBits) - 1;

 public:
  // A holder list becomes dense at this many holders (and >= 1/16 of the worker slots); a dense
  // set goes back to a list below kDenseMin / 2 holders (or < 1/32 of the slots). (1/16 rather
  // than 1/8: the walk visits a list holder by holder, a dense set 64 workers at a time; in
  // router_bench with 4,000 requests in flight, decision p99 37-41 us vs 37-53 us over 3 runs
  // each, other figures and bytes per entry unchanged.)
  static constexpr uint32_t kDenseMin = 64;

 private:
  static bool isEmpty(const Slot& s) { return (s.holder == 0) & (s.overflow == kNoOverflow); }
  // The two candidate lines of a hash, as the index of each line's first slot. The second is the
  // first XOR an odd line offset below 64 (and below the number of lines): another line of the
  // same 4 KiB page, so that otherLine(h, line) maps either line to the other one.
  // (Session 9: was linear probing from a line-aligned home with backward-shift erase; at the
  // 10M-entry table's load of 0.57-0.63 a probe or an erase's shift ran past the prefetched line
  // often enough that a block event cost 70 ns at 10M entries against 29 in cache.)
  static constexpr size_t kLineSlots = 4;
  static constexpr size_t kPageSlots = 256;  // a 4 KiB page: a hash's two lines are in one
  static uint64_t mix(BlockHash h) { return h * 0x9E3779B97F4A7C15ull; }
  size_t firstLine(BlockHash h) const { return (mix(h) >> shift_) & ~(kLineSlots - 1); }
  size_t lineOffset(BlockHash h) const { return ((((mix(h) >> 20) & 63) | 1) & line_mask_) * kLineSlots; }
  size_t otherLine(BlockHash h, size_t line) const { return line ^ lineOffset(h); }
  // Slots not initialised: a growing index writes each page of a new table when the first
  // entries move into it.
  using SlotTable = HugeArray<Slot>;
  // Where h lives: the table (the previous one while its page has not moved) and its two lines.
  struct Lines {
    const Slot* t;
    size_t a, b;
  };
  // While a doubling runs, which table holds h is a coin toss: chosen without a branch (a
  // mispredicted one per lookup made a cached 32-block walk 60% slower).
  [[gnu::always_inline]] Lines linesOf(BlockHash h) const {
    const size_t off = lineOffset(h);
    size_t a = firstLine(h);
    const Slot* t = table_.data();
    if (old_.data() != nullptr) [[unlikely]] {
      const size_t oa = (mix(h) >> old_shift_) & ~(kLineSlots - 1);
      const size_t page = oa / kPageSlots;
      const uint64_t in_old = ((moved_[page / 64] >> (page % 64)) & 1) - 1;  // all ones: not moved
      a = (oa & in_old) | (a & ~in_old);
      t = reinterpret_cast<const Slot*>((reinterpret_cast<uintptr_t>(old_.data()) & in_old) |
                                        (reinterpret_cast<uintptr_t>(t) & ~in_old));
    }
    return {t, a, a ^ off};
  }
  bool moved(size_t old_page) const { return (moved_[old_page / 64] >> (old_page % 64)) & 1; }
  // Always inlined: GCC deems an out-of-line function that only prefetches free of side effects
  // and deletes its calls.
  [[gnu::always_inline]] void prefetch(BlockHash h) const {
    const Lines l = linesOf(h);
    prefetchL2(l.t + l.a);
    prefetchL2(l.t + l.b);
  }
  // Bit k set: slot k of the line at `line` of table t holds h / is empty.
  // An empty slot's hash is 0 (erase and rebuild leave Slot{}), so only h == 0 needs the empty
  // check.
  static unsigned matchIn(const Slot* t, size_t line, BlockHash h) {
    const Slot* l = t + line;
    unsigned m = 0;
#pragma GCC unroll 4
    for (unsigned k = 0; k < kLineSlots; ++k) m |= static_cast<unsigned>(l[k].hash == h) << k;
    if (h == 0) [[unlikely]] m &= ~emptyIn(t, line);
    return m;
  }
  static unsigned emptyIn(const Slot* t, size_t line) {
    const Slot* l = t + line;
    unsigned m = 0;
#pragma GCC unroll 4
    for (unsigned k = 0; k < kLineSlots; ++k) m |= static_cast<unsigned>(isEmpty(l[k])) << k;
    return m;
  }
  unsigned emptyIn(size_t line) const { return emptyIn(table_.data(), line); }
  // A slot for a hash not in the table (hash set, no holder: the caller fills it at once): in
  // its first line, else its second, else after moving residents to their other line; nullptr
  // when that finds no room (the caller grows the table).
  Slot* place(BlockHash h);
  [[gnu::noinline]] Slot* placeByWalk(BlockHash h, size_t line);  // place()'s last resort, from h's first line
  // An empty slot of lines a or b of table t, else one made by moving a resident of theirs to
  // its other line; nullptr if neither works.
  Slot* placeWithoutWalk(Slot* t, BlockHash h, size_t a, size_t b);
  static constexpr WorkerSlot kAnyWorker = 0xFFFFFFFFu;
  // A multi-holder block costs up to three dependent misses (table slot, holder set, the set's
  // data): requested ahead, they overlap instead of adding up. Always inlined: GCC finds an
  // out-of-line function that only reads memory and prefetches free of side effects and deletes
  // its calls.
  [[gnu::always_inline]] void prefetchSet(const Slot* s) const {  // its holder set (if any)
    if (s == nullptr || s->overflow == kNoOverflow) return;
    const char* p = reinterpret_cast<const char*>(&holders(s->overflow));
    __builtin_prefetch(p);
    __builtin_prefetch(p + sizeof(Holders) - 1);
  }
  // The part of a slot's holder set that will be read: for kAnyWorker (the walk) a dense set's
  // bitset or the list, else the worker's mask byte of a dense set or the list.
  [[gnu::always_inline]] void prefetchEntry(const Slot* s, WorkerSlot worker) const {
    if (s == nullptr || s->overflow == kNoOverflow) return;
    const Holders& hd = holders(s->overflow);
    if (hd.dense && worker != kAnyWorker) {
      if (worker < hd.masks.size()) __builtin_prefetch(&hd.masks[worker]);
      return;
    }
    const auto* p = hd.dense ? reinterpret_cast<const char*>(hd.bits.data())
                             : reinterpret_cast<const char*>(hd.list.data());
    const size_t bytes = hd.dense ? hd.bits.size() * sizeof(uint64_t) : hd.list.size() * sizeof(uint32_t);
    for (size_t off = 0; off < std::min<size_t>(bytes, 256); off += 64) __builtin_prefetch(p + off);
  }
  // One block of a stored (add) or removed event, as apply(span) batches them.
  struct BlockOp {
    BlockHash hash;
    WorkerSlot worker;
    uint32_t bits;  // the tier bit
    bool add;
    const Slot* slot;  // prefetchRound's scratch: the slot found then (nullptr: absent)
  };
  // `at`: h's slot if the caller knows it, else nullptr (looked up).
  void addBlock(WorkerSlot worker, BlockHash h, uint32_t bit, Slot* at);
  void removeBlock(WorkerSlot worker, BlockHash h, uint32_t bits, Slot* at);
  // Events are applied in rounds of up to kRound blocks (ops_scratch_): prefetchRound, then
  // each op in order. applyViews gathers the rounds from events of either form.
  struct EventView {
    WorkerSlot worker;
    bool clear;  // AllCleared
    bool add;    // stored (else removed)
    uint32_t bit;
    std::span<const BlockHash> hashes;
  };
  template <class View>
  void applyViews(size_t n, View&& view);
  void runRound();
  // Requests a round's table lines, then the holder sets and next lines the ops will touch,
  // then the sets' entries to be written.
  void prefetchRound(std::span<BlockOp> ops) const;
  Slot* find(BlockHash h);
  const Slot* find(BlockHash h) const;
  Slot* findOrInsert(BlockHash h);
  void eraseSlot(Slot* s);
  // Doubling: grow() starts it (or, for a table under kMovePagesMin slots, or when placement
  // fails while one runs, rebuild() places every entry at once); movePage() moves an old page;
  // moveSome() moves the next `pages` pages not moved yet and ends the doubling after the last.
  static constexpr size_t kMovePagesMin = kPageSlots;
  // Out of line (noinline, cold): runRound is flattened, and these rare paths doubled its size
  // (router_bench decisions and events ~10% slower).
  [[gnu::noinline, gnu::cold]] void grow();
  [[gnu::noinline, gnu::cold]] void rebuild(size_t capacity);
  [[gnu::noinline]] void movePage(size_t old_page);
  [[gnu::noinline]] void moveOwnPage(BlockHash h);  // h's old page, if not moved yet
  [[gnu::noinline]] void noteQueryWhileGrowing();
  // findOrInsert() during a doubling: a slot for h in the old table (nullptr: h's page has moved,
  // or it had no room for h without a walk and has moved now).
  [[gnu::noinline]] Slot* insertIntoOldPage(BlockHash h);
  static constexpr uint32_t kMoveEvery = 16;
  [[gnu::noinline]] void moveSome(size_t pages);
  void moveAll() { moveSome(moved_pages_left_); }
  void setTable(SlotTable t);  // table_, shift_ and line_mask_
  // Calls fn(first slot, count) for every range of slots that may hold entries, in both tables.
  template <class Fn>
  void forEachRange(Fn&& fn);
  // Deferred release: sweepSome() clears the released slots' entries from kSweepSlots slots
  // (circularly, from sweep_pos_); a slot is recycled once the sweep has covered the whole
  // table since its release. Paused while a doubling runs; finished at once before one starts.
  struct Sweep {
    WorkerSlot slot;
    size_t left;  // table slots still to visit for it
  };
  // Starts the sweep of a slot no longer in slots_ (releaseWorker, renewWorker).
  void retire(WorkerSlot slot);
  [[gnu::noinline]] void sweepSome(size_t n);
  static constexpr size_t kSweepAhead = 16;  // lines requested ahead of the sweep
  void finishSweeps();
  void recycleAged();
  bool retiring(WorkerSlot w) const {
    return w / 64 < retiring_bits_.size() && ((retiring_bits_[w / 64] >> (w % 64)) & 1) != 0;
  }
  // Clears every bit of the `targets` workers in slots [from, from + n) (is_target(w): w is one
  // of them), kSweepSlots at a time (sweepSome and clearWorker).
  template <class IsTarget>
  void clearSlots(Slot* from, size_t n, std::span<const WorkerSlot> targets, IsTarget&& is_target);
  // The next table, mapped and being pre-faulted by spare_faulter_ (joined before either goes).
  [[gnu::noinline, gnu::cold]] void prepareSpare();
  // Sets `bits` for worker on slot; returns the previous mask.
  uint32_t setBits(Slot* s, WorkerSlot w, uint32_t bits);
  // Clears `bits` for worker on slot (erasing the slot when no holder is left); previous mask.
  uint32_t clearBits(Slot* s, WorkerSlot w, uint32_t bits);
  void onMaskChange(WorkerSlot w, uint32_t before, uint32_t after);
  uint32_t allocOverflow();
  void freeOverflow(Slot* s);
  // Holders helpers (h.dense or not).
  static uint32_t holderMask(const Holders& h, WorkerSlot w);
  size_t holderCount(const Holders& h) const { return h.dense ? h.count : h.list.size(); }
  void setHolderMask(Holders& h, WorkerSlot w, uint32_t mask);  // mask 0 removes w
  void toDense(Holders& h);
  void toList(Holders& h);
  // findOverlaps helpers.
  void notePartial(WorkerSlot w, uint32_t mask);
  double weightedRun(WorkerSlot w, int32_t depth) const;
  // Calls gone(run length, word index, bits) for the workers holding the first block, by words.
  template <class Gone>
  void walk(std::span<const BlockHash> hashes, Gone&& gone);
  // Calls emit(worker, run length, weighted run) once per worker holding the first block.
  template <class Emit>
  void walkWorkers(std::span<const BlockHash> hashes, Emit&& emit);

  PrefixIndexOptions options_;
  std::array<double, 32> mask_weight_{};
  std::array<bool, 32> mask_partial_{};  // mask_weight_ != 1
  SlotTable table_;
  size_t size_ = 0;  // hashes in both tables
  int shift_ = 64;
  size_t line_mask_ = 0;  // lines - 1
  // While a doubling runs: the previous table, its shift, a bit per page moved, the pages left,
  // and where moveSome() looks next.
  SlotTable old_;
  int old_shift_ = 64;
  std::vector<uint64_t> moved_;
  size_t moved_pages_left_ = 0;
  size_t move_cursor_ = 0;
  uint32_t inserts_since_move_ = 0;
  // Bumped whenever slots may have moved to other memory (a doubling's end or a rebuild):
  // runRound's slots found in advance are then looked up again.
  uint64_t generation_ = 0;
  SlotTable spare_;
  Prefaulter spare_faulter_;  // after spare_ and table_: joined before they go
  bool doubled_ = false;  // the table has grown since construction
  size_t num_entries_ = 0;
  // Holder sets in chunks that never move: a growing pool copies nothing, and each chunk is on
  // 2 MiB pages from its first set (a 4 KiB page fault per 46 new sets costs ~12 us each on the
  // benchmark's KVM guest). Set i is pool_[i >> kPoolShift][i & (kPoolChunk - 1)].
  static constexpr uint32_t kPoolShift = 15;
  static constexpr uint32_t kPoolChunk = 1u << kPoolShift;
  std::vector<std::vector<Holders, HugePageAllocator<Holders>>> pool_;
  uint32_t pool_size_ = 0;
  std::vector<uint32_t> pool_free_;
  Holders& holders(uint32_t i) { return pool_[i >> kPoolShift][i & (kPoolChunk - 1)]; }
  const Holders& holders(uint32_t i) const { return pool_[i >> kPoolShift][i & (kPoolChunk - 1)]; }
  size_t num_dense_ = 0;

  std::vector<Sweep> sweeping_;
  std::vector<Slot*> sweep_sets_;         // clearSlots' slots with a holder set
  std::vector<WorkerSlot> sweep_targets_;  // sweepSome: the slots of sweeping_
  std::vector<uint64_t> retiring_bits_;  // by worker slot: being swept
  // Swept slots whose keys in predictions_ have not all aged out yet (recycled after).
  std::vector<WorkerSlot> aging_;
  size_t sweep_pos_ = 0;

  std::unordered_map<WorkerId, WorkerSlot> slots_;
  std::vector<WorkerId> slot_ids_;
  std::vector<WorkerSlot> free_slots_;
  std::vector<size_t> worker_entries_;

  PredictionLru predictions_;  // refresh_predictions
  PredictionLog log_;           // !refresh_predictions
  size_t num_predictions_ = 0;
  void dropOldestRecord();      // clears the predicted bits log_.front() still has

  // findOverlaps scratch: bitsets over worker slots, and per-slot partial-weight accumulators.
  std::vector<uint64_t> alive_;
  std::vector<uint64_t> next_;
  std::vector<uint32_t> stamp_;
  std::vector<int32_t> partial_blocks_;
  std::vector<double> partial_weight_;
  uint32_t epoch_ = 0;
  bool any_partial_ = false;
  std::vector<BlockHash> predict_scratch_;  // predict(): the blocks to mark
  std::vector<const Slot*> predict_slots_;  // predict(): the round's slots
  std::vector<BlockOp> ops_scratch_;         // apply(span): the current round
};

}  // namespace turbine::kv
