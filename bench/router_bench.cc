// Router micro-benchmark (issue 5 §6): KV events applied/s, routing decisions/s and their
// p50/p99 latency, with 1,000 workers and >= 10M indexed (worker, block) entries, and bytes per
// indexed block. One thread. Usage: router_bench [workers] [blocks_per_worker] [decisions] [exhaustive]
// ("exhaustive": every decision evaluates every worker, the reference path, for comparison).
// Counting as NVIDIA Dynamo's figure does: each block hash of a stored/removed event is one KV
// event (vLLM and Dynamo emit one per block), each routing decision one request.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "kv/prefix_index.h"
#include "router/kv_router.h"

using namespace turbine;
using Clock = std::chrono::steady_clock;

namespace {

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Exact quantiles of recorded decision latencies (the router's own histogram has 12.5% buckets,
// too coarse to compare two builds). The buffer is touched up front: growing it inside the timed
// loop faulted a fresh 4 KiB page every 512 records, ~12 us each on the KVM guest these figures
// come from (780 of the 200,000 steady-state decisions).
struct Latencies {
  explicit Latencies(size_t n) {
    ns.assign(n, 0);
    ns.clear();
  }
  std::vector<int64_t> ns;
  void record(int64_t v) { ns.push_back(v); }
  std::string summary() {
    std::sort(ns.begin(), ns.end());
    auto q = [&](double f) { return ns.empty() ? 0LL : static_cast<long long>(ns[static_cast<size_t>(f * double(ns.size() - 1))]); };
    char buf[160];
    std::snprintf(buf, sizeof buf, "p50 %lld ns, p90 %lld ns, p99 %lld ns, p99.9 %lld ns, max %lld ns", q(0.5), q(0.9),
                  q(0.99), q(0.999), q(1.0));
    return buf;
  }
};

// A chain of `len` hashes; the first `shared` come from a popular prefix (many workers).
std::vector<kv::BlockHash> makeChain(std::mt19937_64& rng, const std::vector<std::vector<kv::BlockHash>>& popular,
                                     int len) {
  std::vector<kv::BlockHash> c;
  const auto& p = popular[rng() % popular.size()];
  const size_t shared = rng() % (p.size() + 1);
  c.assign(p.begin(), p.begin() + static_cast<long>(shared));
  while (static_cast<int>(c.size()) < len) c.push_back(rng());
  return c;
}

// The machine's own stalls: a thread that only reads the clock for `seconds`, counting the gaps
// over 10 us (timer interrupts and host preemption; on the 2-core KVM/PVM guest these figures
// were taken on, ~1,000-2,000 per second of 16-34 us each). A decision of d us is hit with
// probability ~d x that rate, which sets a floor under the p99 that no router code can lower.
void printStallProbe(double seconds) {
  std::vector<int64_t> gaps;
  const auto t0 = Clock::now();
  auto prev = t0;
  while (secondsSince(t0) < seconds) {
    const auto now = Clock::now();
    const int64_t g = std::chrono::duration_cast<std::chrono::nanoseconds>(now - prev).count();
    if (g > 10000) gaps.push_back(g);
    prev = now;
  }
  std::sort(gaps.begin(), gaps.end());
  std::printf("machine stalls (clock-reading thread, gaps > 10 us): %.0f per s, p50 %lld ns, p90 %lld ns\n",
              gaps.size() / seconds, gaps.empty() ? 0LL : static_cast<long long>(gaps[gaps.size() / 2]),
              gaps.empty() ? 0LL : static_cast<long long>(gaps[gaps.size() * 9 / 10]));
}

// The machine's random-access memory throughput right now, which bounds the index's event and
// walk rounds: 64-byte lines at random over 256 MiB of huge pages, 64 requested before any is
// read and written (as a round does). On the KVM guest these figures come from it moves between
// ~9.5 and ~14 ns per line within the hour, and the router's throughput with it.
void printMemoryProbe() {
  constexpr size_t kBytes = size_t{256} << 20, kLines = kBytes / 64, kBatch = 64, kReads = 2'000'000;
  auto* p = static_cast<char*>(kv::allocateHugePages(kBytes));
  for (size_t i = 0; i < kBytes; i += 4096) p[i] = 1;  // fault every page in first
  std::mt19937_64 rng(9);
  std::vector<size_t> at(kReads);
  for (auto& a : at) a = (rng() % kLines) * 64;
  uint64_t sum = 0;
  const auto t0 = Clock::now();
  for (size_t b = 0; b < kReads; b += kBatch) {
    for (size_t k = 0; k < kBatch; ++k) __builtin_prefetch(p + at[b + k]);
    for (size_t k = 0; k < kBatch; ++k) {
      sum += static_cast<uint64_t>(p[at[b + k]]);
      p[at[b + k] + 8] = 1;
    }
  }
  const double ns = secondsSince(t0) * 1e9 / kReads;
  kv::freeHugePages(p, kBytes);
  std::printf("machine memory: random 64-byte lines over 256 MiB, 64 in flight: %.1f ns each%s\n", ns,
              sum == 0 ? " (?)" : "");
}

// Page faults of this process so far (minor + major). A fault in a timed loop is memory touched
// for the first time: ~12 us per 4 KiB page on the KVM guest, ~1 us on bare metal.
long pageFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt + u.ru_majflt;
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::atoi(argv[1]) : 1000;
  // 12,800 stored blocks per worker give ~10.6M entries (popular prefixes are stored repeatedly).
  const int blocks_per_worker = argc > 2 ? std::atoi(argv[2]) : 12800;
  const int decisions = argc > 3 ? std::atoi(argv[3]) : 200000;
  const bool exhaustive = argc > 4 && std::string(argv[4]) == "exhaustive";
  constexpr int kChain = 32;       // blocks per stored event (one prompt)
  printStallProbe(1.0);
  printMemoryProbe();
  std::mt19937_64 rng(1);
  std::vector<std::vector<kv::BlockHash>> popular(64);
  for (auto& p : popular) for (int i = 0; i < 16; ++i) p.push_back(rng());

  router::KvRouterOptions opts;
  opts.exhaustive = exhaustive;
  // Predictions live 1 s after a decision (10 s by default): each timed phase runs ~2 s, so it
  // pays for dropping expired predictions at the rate it makes them, as a long run does.
  opts.prediction_ttl_ms = 1000;
  router::KvRouter router(opts);
  for (int w = 1; w <= workers; ++w) router.addWorker({static_cast<kv::WorkerId>(w), "m", "agg", 16, 100000});

  // 1) Stored events: workers x blocks_per_worker entries.
  std::vector<std::vector<kv::BlockHash>> stored_chains;
  uint64_t events = 0, blocks = 0;
  std::vector<uint64_t> seqs(static_cast<size_t>(workers) + 1, 0);
  auto t0 = Clock::now();
  double apply_s = 0, slowest_s = 0;
  for (int round = 0; round < blocks_per_worker / kChain; ++round) {
    for (int w = 1; w <= workers; ++w) {
      auto chain = makeChain(rng, popular, kChain);
      if (stored_chains.size() < 100000) stored_chains.push_back(chain);
      kv::KvEventMessage msg{static_cast<kv::WorkerId>(w), seqs[w]++, {}};
      msg.events.push_back(kv::BlockStored{std::move(chain), std::nullopt, kv::Tier::kDevice});
      const auto a = Clock::now();
      router.onKvEvents(msg);
      const double took = std::chrono::duration<double>(Clock::now() - a).count();
      apply_s += took;
      slowest_s = std::max(slowest_s, took);
      ++events;
      blocks += kChain;
    }
  }
  const double build_s = secondsSince(t0);
  auto st = router.stats();
  std::printf("workers %d, indexed (worker, block) entries %zu%s (distinct hashes %zu), %s decisions\n", workers,
              st.index_entries, st.index_entries >= 10'000'000 ? "" : " (< 10M: raise blocks_per_worker)",
              st.index_hashes, exhaustive ? "exhaustive" : "pruned");
  std::printf("stored: %llu events of %d blocks in %.2f s applying (%.2f s with generation): %.2f M events/s, %.1f M blocks/s\n",
              (unsigned long long)events, kChain, apply_s, build_s, events / apply_s / 1e6, blocks / apply_s / 1e6);
  std::printf("memory: %.1f MB index, %.1f bytes per indexed (worker, block) entry\n", st.index_bytes / 1e6,
              double(st.index_bytes) / double(st.index_entries));
  std::printf("stored: the slowest event took %.1f ms (doublings move the index's table a page at a time)\n",
              slowest_s * 1e3);

  // 2) Routing decisions (route + finish), half on indexed prefixes.
  std::vector<std::vector<kv::BlockHash>> queries;
  for (int i = 0; i < 4096; ++i) {
    queries.push_back(i % 2 ? stored_chains[rng() % stored_chains.size()] : makeChain(rng, popular, kChain));
  }
  std::vector<std::string> ids(8192);
  for (int i = 0; i < 8192; ++i) ids[i] = "r" + std::to_string(i);
  // Decision i (query i, request id i), its latency recorded; false if routing failed.
  auto timedRoute = [&](int i, Latencies& into) {
    const auto& q = queries[static_cast<size_t>(i) % queries.size()];
    const auto a = Clock::now();
    auto d = router.route({ids[static_cast<size_t>(i) % ids.size()], "m", q, kChain * 16});
    into.record(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count());
    return static_cast<bool>(d);
  };
  Latencies lat(static_cast<size_t>(decisions));
  t0 = Clock::now();
  for (int i = 0; i < decisions; ++i) {
    if (!timedRoute(i, lat)) return 1;
    router.onRequestFinished(ids[i % ids.size()]);
  }
  const double route_s = secondsSince(t0);
  std::printf("route (index idle): %d decisions of %d blocks over %d workers: %.0f decisions/s (with finish), %s\n",
              decisions, kChain, workers, decisions / route_s, lat.summary().c_str());

  // 3) Steady state: the index stays at its size while workers store new prompts and evict old
  // ones (one stored + one removed event per decision), decisions interleaved.
  std::vector<std::pair<kv::WorkerId, std::vector<kv::BlockHash>>> live;  // FIFO of stored chains
  for (size_t i = 0; i < stored_chains.size(); ++i) {
    live.emplace_back(1 + i % static_cast<size_t>(workers), stored_chains[i]);
  }
  size_t oldest = 0;
  {
    std::vector<kv::KvEventMessage> msgs;
    const int mixed = decisions;
    for (int i = 0; i < mixed; ++i) {  // events prepared outside the timed loop
      const auto w = static_cast<kv::WorkerId>(1 + rng() % static_cast<uint64_t>(workers));
      auto chain = makeChain(rng, popular, kChain);
      auto& old = live[oldest];
      oldest = (oldest + 1) % live.size();
      kv::KvEventMessage rm{old.first, seqs[old.first]++, {kv::BlockRemoved{old.second, kv::Tier::kDevice}}};
      msgs.push_back(std::move(rm));
      kv::KvEventMessage st{w, seqs[w]++, {kv::BlockStored{chain, std::nullopt, kv::Tier::kDevice}}};
      msgs.push_back(std::move(st));
      old = {w, std::move(chain)};
    }
    Latencies mixed_lat(static_cast<size_t>(mixed)), event_lat(static_cast<size_t>(mixed));
    const long faults0 = pageFaults();
    const auto t0 = Clock::now();
    for (int i = 0; i < mixed; ++i) {
      const auto e = Clock::now();
      router.onKvEvents(msgs[2 * static_cast<size_t>(i)]);
      router.onKvEvents(msgs[2 * static_cast<size_t>(i) + 1]);
      event_lat.record(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - e).count());
      const auto& q = queries[static_cast<size_t>(i) % queries.size()];
      const auto a = Clock::now();
      auto d = router.route({ids[i % ids.size()], "m", q, kChain * 16});
      mixed_lat.record(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count());
      if (!d) return 1;
      router.onRequestFinished(ids[i % ids.size()]);
    }
    const double mixed_s = secondsSince(t0);
    const long faults = pageFaults() - faults0;
    const auto st = router.stats();
    const double msgs_n = 2.0 * mixed, blocks_n = 2.0 * mixed * kChain;
    std::printf("steady state (%zu entries): per decision 1 stored + 1 removed event of %d blocks: "
                "%.0f decisions/s, %.2f M events/s (%.1f M blocks/s), decision %s\n",
                st.index_entries, kChain, mixed / mixed_s, msgs_n / mixed_s / 1e6, blocks_n / mixed_s / 1e6,
                mixed_lat.summary().c_str());
    std::printf("steady state: the %d block events of each decision took %s; %ld page faults in the loop\n",
                2 * kChain, event_lat.summary().c_str(), faults);
    std::printf("events+requests (steady state, one core): %.2f M/s counting each block of an event as "
                "one event (Dynamo's count) plus each decision; %.2f M/s counting event messages\n",
                (blocks_n + mixed) / mixed_s / 1e6, (msgs_n + mixed) / mixed_s / 1e6);
  }

  // 4) Loaded workers: 4,000 requests in flight (each finishes 4,000 decisions after it was
  // routed), so active blocks differ from worker to worker and decisions trade load for overlap.
  constexpr int kInFlight = 4000;
  Latencies loaded_lat(static_cast<size_t>(decisions));
  t0 = Clock::now();
  for (int i = 0; i < decisions; ++i) {
    if (!timedRoute(i, loaded_lat)) return 1;
    if (i >= kInFlight) router.onRequestFinished(ids[(i - kInFlight) % ids.size()]);
  }
  for (int i = std::max(decisions - kInFlight, 0); i < decisions; ++i) {
    router.onRequestFinished(ids[i % ids.size()]);
  }
  const double loaded_s = secondsSince(t0);
  std::printf("route (%d requests in flight): %.0f decisions/s (with finish), %s\n", kInFlight,
              decisions / loaded_s, loaded_lat.summary().c_str());

  // 5) Fleet-like steady state: what a fleet's events look like. Each routed prompt is then
  // stored on the worker it went to (replacing the router's predictions, as a worker's stored
  // event does after its prefill) and the oldest live chain is removed; half the prompts repeat a
  // live chain (a next turn), half are new (a popular prefix of random length, then new blocks).
  // Phase 3 instead stores unrelated chains on random workers, so its predictions are never
  // confirmed and each decision re-touches the same prediction entries. Throughput counts only
  // the time inside router calls (making the event messages is the subscriber's work).
  {
    std::vector<std::vector<kv::BlockHash>> fresh(static_cast<size_t>(decisions));
    for (auto& c : fresh) c = makeChain(rng, popular, kChain);
    std::vector<uint64_t> picks(static_cast<size_t>(decisions));
    for (auto& p : picks) p = rng();
    Latencies route_lat(static_cast<size_t>(decisions)), event_lat(static_cast<size_t>(decisions));
    double router_s = 0;
    const long faults0 = pageFaults();
    const auto w0 = Clock::now();
    for (int i = 0; i < decisions; ++i) {
      const auto& q = picks[i] % 2 ? live[picks[i] / 2 % live.size()].second : fresh[i];
      const auto a = Clock::now();
      auto d = router.route({ids[i % ids.size()], "m", q, kChain * 16});
      const auto b = Clock::now();
      if (!d) return 1;
      router.onRequestFinished(ids[i % ids.size()]);
      auto& old = live[oldest];
      oldest = (oldest + 1) % live.size();
      kv::KvEventMessage st{d->worker, seqs[d->worker]++, {kv::BlockStored{q, std::nullopt, kv::Tier::kDevice}}};
      kv::KvEventMessage rm{old.first, seqs[old.first]++, {kv::BlockRemoved{std::move(old.second), kv::Tier::kDevice}}};
      const auto c = Clock::now();
      router.onKvEvents(st);
      router.onKvEvents(rm);
      const auto e = Clock::now();
      old = {d->worker, std::get<kv::BlockStored>(st.events[0]).block_hashes};
      route_lat.record(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
      event_lat.record(std::chrono::duration_cast<std::chrono::nanoseconds>(e - c).count());
      router_s += std::chrono::duration<double>((b - a) + (e - c)).count();
    }
    const double wall_s = secondsSince(w0);
    const long faults = pageFaults() - faults0;
    const auto st = router.stats();
    const double units = double(decisions) * (2 * kChain + 1);
    std::printf("fleet-like steady state (%zu entries, %zu predictions live): decision %s\n", st.index_entries,
                st.index_predictions, route_lat.summary().c_str());
    std::printf("fleet-like steady state: the %d block events of each decision took %s; %ld page faults in the loop\n",
                2 * kChain, event_lat.summary().c_str(), faults);
    std::printf("events+requests (fleet-like steady state, one core): %.2f M/s in router calls (%.2f M/s of the "
                "loop's wall time, which also makes the messages)\n",
                units / router_s / 1e6, units / wall_s / 1e6);
  }

  // 6) Small messages, as a fleet's decode steps send them: per decision 16 stored and 16 removed
  // messages of 2 blocks each from random workers (the 64 block events of phase 3 in 32 messages
  // instead of 2). Each decision's messages are filled just before it (reused objects, warm in
  // cache as a subscriber's freshly received ones are); only the router calls are timed.
  {
    constexpr size_t kSmall = 2;
    std::vector<kv::KvEventMessage> msgs(32);
    for (size_t k = 0; k < msgs.size(); ++k) {
      if (k % 2 == 0) {
        msgs[k].events.push_back(kv::BlockStored{std::vector<kv::BlockHash>(kSmall), std::nullopt, kv::Tier::kDevice});
      } else {
        msgs[k].events.push_back(kv::BlockRemoved{std::vector<kv::BlockHash>(kSmall), kv::Tier::kDevice});
      }
    }
    struct Stored {
      kv::WorkerId worker;
      std::array<kv::BlockHash, kSmall> hashes;
    };
    std::vector<Stored> ring(size_t{1} << 17);  // the stored pairs, oldest removed first
    size_t ring_head = 0, ring_count = 0;
    Latencies route_lat(static_cast<size_t>(decisions));
    const long faults0 = pageFaults();
    double router_s = 0;
    uint64_t blocks_n = 0;
    for (int i = 0; i < decisions; ++i) {
      for (size_t k = 0; k < msgs.size(); ++k) {
        auto& hs = k % 2 == 0 ? std::get<kv::BlockStored>(msgs[k].events[0]).block_hashes
                              : std::get<kv::BlockRemoved>(msgs[k].events[0]).block_hashes;
        if (k % 2 == 0) {  // stored: new blocks on a random worker
          const auto w = static_cast<kv::WorkerId>(1 + rng() % static_cast<uint64_t>(workers));
          for (auto& h : hs) h = rng();
          msgs[k].worker_id = w;
          msgs[k].seq = seqs[w]++;
          Stored& slot = ring[(ring_head + ring_count++) & (ring.size() - 1)];
          slot.worker = w;
          std::copy(hs.begin(), hs.end(), slot.hashes.begin());
        } else if (ring_count > 100000) {  // removed: the oldest stored pair
          const Stored& old = ring[ring_head];
          ring_head = (ring_head + 1) & (ring.size() - 1);
          --ring_count;
          hs.assign(old.hashes.begin(), old.hashes.end());
          msgs[k].worker_id = old.worker;
          msgs[k].seq = seqs[old.worker]++;
        } else {  // removed: two blocks of an old chain of phase 1-5 (the index keeps its size)
          auto& old = live[oldest];
          oldest = (oldest + 1) % live.size();
          hs.assign(old.second.begin(), old.second.begin() + kSmall);
          msgs[k].worker_id = old.first;
          msgs[k].seq = seqs[old.first]++;
        }
        blocks_n += kSmall;
      }
      const auto& q = queries[static_cast<size_t>(i) % queries.size()];
      const auto t0 = Clock::now();
      for (const auto& msg : msgs) router.onKvEvents(msg);
      const auto a = Clock::now();
      auto d = router.route({ids[i % ids.size()], "m", q, kChain * 16});
      const auto b = Clock::now();
      if (!d) return 1;
      router.onRequestFinished(ids[i % ids.size()]);
      route_lat.record(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
      router_s += std::chrono::duration<double>(b - t0).count();
    }
    std::printf("small messages (32 of %zu blocks per decision; %ld page faults): decision %s\n", kSmall,
                pageFaults() - faults0, route_lat.summary().c_str());
    std::printf("events+requests (small messages, one core): %.2f M/s in router calls\n",
                (double(blocks_n) + decisions) / router_s / 1e6);
  }

  // 7) A worker leaves: the call, then decisions while the index sweeps its entries (a slice
  // per query or event round; 32,768 slices for this table).
  {
    const auto t0 = Clock::now();
    router.removeWorker(1);
    const double remove_ms = secondsSince(t0) * 1e3;
    constexpr int kAfter = 40000;
    Latencies lat(kAfter);
    for (int i = 0; i < kAfter; ++i) {
      if (!timedRoute(i, lat)) return 1;
      router.onRequestFinished(ids[i % ids.size()]);
    }
    std::printf("a worker leaves: removeWorker took %.3f ms; the next %d decisions (its entries swept "
                "meanwhile): %s\n", remove_ms, kAfter, lat.summary().c_str());
  }
  // 8) A worker clears its cache (an AllCleared event: vLLM's reset_prefix_cache, or the start
  // of a snapshot after lost events): the event and the decision after it (events wait in a
  // buffer until a read), then decisions while its old entries are swept.
  {
    kv::KvEventMessage clear{2, seqs[2]++, {kv::AllCleared{}}};
    Latencies first(1);
    const auto t0 = Clock::now();
    router.onKvEvents(clear);
    if (!timedRoute(0, first)) return 1;
    const double clear_ms = secondsSince(t0) * 1e3;
    router.onRequestFinished(ids[0]);
    constexpr int kAfter = 40000;
    Latencies lat(kAfter);
    for (int i = 1; i <= kAfter; ++i) {
      if (!timedRoute(i, lat)) return 1;
      router.onRequestFinished(ids[i % ids.size()]);
    }
    std::printf("a worker clears its cache: the event and the next decision took %.3f ms; the next %d "
                "decisions: %s\n", clear_ms, kAfter, lat.summary().c_str());
  }
  // 9) Approximate mode (--no-kv-events): the index holds nothing but the router's own
  // predictions. Another router of as many workers makes decisions of fresh prompts until its
  // predictions reach their cap (4M: the prediction LRU grows to it), then decisions on prompts
  // it has routed before (their predictions touched again: the LRU's ring compacts as it goes),
  // then a worker leaves.
  {
    router::KvRouterOptions aopts;
    aopts.use_kv_events = false;
    router::KvRouter approx(aopts);
    for (int w = 1; w <= workers; ++w) approx.addWorker({static_cast<kv::WorkerId>(w), "m", "agg", 16, 100000});
    const int fill = static_cast<int>(aopts.prediction_cap / kChain * 3 / 2);  // shared prefixes: fewer new keys
    std::vector<std::vector<kv::BlockHash>> seen;
    auto timedApprox = [&](const std::vector<kv::BlockHash>& q, int i, Latencies& into) {
      const auto a = Clock::now();
      auto d = approx.route({ids[static_cast<size_t>(i) % ids.size()], "m", q, kChain * 16});
      into.record(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count());
      approx.onRequestFinished(ids[static_cast<size_t>(i) % ids.size()]);
      return static_cast<bool>(d);
    };
    Latencies fill_lat(static_cast<size_t>(fill));
    auto t0 = Clock::now();
    for (int i = 0; i < fill; ++i) {
      auto q = makeChain(rng, popular, kChain);
      if (!timedApprox(q, i, fill_lat)) return 1;
      if (seen.size() < 4096) seen.push_back(std::move(q));
    }
    const double fill_s = secondsSince(t0);
    std::printf("approximate mode: %d decisions of fresh prompts, predictions growing to %zu: %.0f decisions/s, %s\n",
                fill, approx.stats().index_predictions, fill / fill_s, fill_lat.summary().c_str());
    // Prompts routed before: their predictions touched again, stale touch records pile up and the
    // ring compacts. The first 400,000 decisions take the ring to its steady size (new memory);
    // the next ones are the steady state.
    for (const char* what : {"settling", "steady"}) {
      const int n = std::string(what) == "settling" ? 400000 : decisions;
      Latencies reuse_lat(static_cast<size_t>(n));
      t0 = Clock::now();
      for (int i = 0; i < n; ++i) {
        if (!timedApprox(seen[rng() % seen.size()], i, reuse_lat)) return 1;
      }
      std::printf("approximate mode: %d decisions of prompts routed before (%s; predictions touched again): "
                  "%.0f decisions/s, %s\n", n, what, n / secondsSince(t0), reuse_lat.summary().c_str());
    }
    t0 = Clock::now();
    approx.removeWorker(1);
    std::printf("approximate mode: removeWorker took %.3f ms\n", secondsSince(t0) * 1e3);
  }
  printMemoryProbe();  // again: the machine may have moved during the phases
  return 0;
}
