// ThreadPool: fork-join over a generation counter. parallelFor publishes the task and bumps
// `generation`; workers spin on it (with pause) for kSpinTime, then sleep in a futex wait
// (std::atomic::wait). The caller and the awake workers claim the chunks; the caller then
// waits, the same way, until all chunks are done. fn's `thread` argument is the chunk index: a
// unique slot in [0, size()) for the region (use it for per-thread scratch), not an OS thread.
#include "engine/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace turbine::engine::cpu {
namespace {

using Fn = std::function<void(int, int64_t, int64_t)>;
using Clock = std::chrono::steady_clock;

// How long a waiting thread spins before it sleeps: long enough to cover the gap between the
// parallel regions of one decode step, short enough not to burn a shared core for nothing.
constexpr auto kSpinTime = std::chrono::microseconds(200);

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Returns once `a` != `old`: spins (with pause) for kSpinTime, then sleeps in a futex wait.
template <typename T>
void spinThenWait(const std::atomic<T>& a, T old) {
  auto deadline = Clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (a.load(std::memory_order_acquire) != old) return;
      cpuRelax();
    }
    if (Clock::now() > deadline) break;
  }
  while (a.load(std::memory_order_acquire) == old) a.wait(old, std::memory_order_acquire);
}

}  // namespace

struct ThreadPool::Impl {
  int size = 1;
  std::vector<std::thread> workers;
  // Bumped once per region; what sleeping workers wait on.
  alignas(64) std::atomic<uint32_t> generation{0};
  // (generation << 32) | next unclaimed chunk. Chunks are claimed by CAS, so the caller and
  // the workers that are awake share out the chunks, and a worker that the OS has not yet
  // scheduled (a loaded machine) does not hold up the region: the caller runs its chunk.
  alignas(64) std::atomic<uint64_t> claim{0};
  alignas(64) std::atomic<int> done{0};
  // The task of the current generation; written before `generation`/`claim` are published and
  // stable until `done` reaches `chunks`.
  std::atomic<const Fn*> fn{nullptr};
  std::atomic<int64_t> n{0};
  std::atomic<int> chunks{0};
  std::atomic<bool> stop{false};
  // parallelForBalanced: per share, (front << 32) | back in grains; a share's grains
  // [front, back) are unclaimed. One cache line each.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares;

  static int64_t chunkBegin(int64_t n, int chunks, int i) {
    return static_cast<int64_t>((static_cast<__int128>(n) * i) / chunks);
  }

  // Claims and runs chunks of generation `gen` until none are left.
  void runChunks(uint32_t gen) {
    for (;;) {
      uint64_t c = claim.load(std::memory_order_acquire);
      int total = chunks.load(std::memory_order_relaxed);
      if (static_cast<uint32_t>(c >> 32) != gen) return;
      auto index = static_cast<int>(c & 0xffffffffu);
      if (index >= total) return;
      if (!claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
      int64_t items = n.load(std::memory_order_relaxed);
      int64_t b = chunkBegin(items, total, index);
      int64_t e = chunkBegin(items, total, index + 1);
      if (b < e) (*fn.load(std::memory_order_relaxed))(index, b, e);
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == total) done.notify_one();
    }
  }

  void workerLoop() {
    uint32_t seen = 0;
    for (;;) {
      spinThenWait(generation, seen);
      seen = generation.load(std::memory_order_acquire);
      if (stop.load(std::memory_order_acquire)) return;
      runChunks(seen);
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : impl_(new Impl) {
  if (n_threads <= 0) {
    n_threads = static_cast<int>(std::thread::hardware_concurrency());
    if (n_threads <= 0) n_threads = 1;
  }
  impl_->size = n_threads;
  impl_->shares = std::make_unique<Impl::Share[]>(static_cast<size_t>(n_threads));
  impl_->workers.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) {
    impl_->workers.emplace_back([this] { impl_->workerLoop(); });
  }
}

ThreadPool::~ThreadPool() {
  impl_->stop.store(true, std::memory_order_release);
  impl_->generation.fetch_add(1, std::memory_order_acq_rel);
  impl_->generation.notify_all();
  for (auto& t : impl_->workers) t.join();
  delete impl_;
}

int ThreadPool::size() const { return impl_->size; }

void ThreadPool::parallelFor(int64_t n, const Fn& fn) {
  if (n <= 0) return;
  Impl& p = *impl_;
  int chunks = static_cast<int>(std::min<int64_t>(n, p.size));
  if (chunks == 1) {
    fn(0, 0, n);
    return;
  }
  uint32_t gen = p.generation.load(std::memory_order_relaxed) + 1;
  p.fn.store(&fn, std::memory_order_relaxed);
  p.n.store(n, std::memory_order_relaxed);
  p.chunks.store(chunks, std::memory_order_relaxed);
  p.done.store(0, std::memory_order_relaxed);
  p.claim.store(static_cast<uint64_t>(gen) << 32, std::memory_order_release);
  p.generation.store(gen, std::memory_order_release);
  p.generation.notify_all();
  p.runChunks(gen);
  for (int d = p.done.load(std::memory_order_acquire); d != chunks;
       d = p.done.load(std::memory_order_acquire)) {
    spinThenWait(p.done, d);
  }
}

namespace {

// Claims one grain of `share`: from the front (the owner) or the back (a thief). Returns -1
// when the share is empty.
int64_t claimGrain(std::atomic<uint64_t>& share, bool front) {
  uint64_t r = share.load(std::memory_order_acquire);
  for (;;) {
    auto f = static_cast<uint32_t>(r >> 32);
    auto b = static_cast<uint32_t>(r & 0xffffffffu);
    if (f >= b) return -1;
    uint64_t next = front ? r + (uint64_t{1} << 32) : r - 1;
    if (share.compare_exchange_weak(r, next, std::memory_order_acq_rel)) {
      return front ? f : b - 1;
    }
  }
}

}  // namespace

void ThreadPool::parallelForBalanced(int64_t n, int64_t grain,
                                     const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t grains = (n + grain - 1) / grain;
  Impl& p = *impl_;
  const int parts = static_cast<int>(std::min<int64_t>(grains, p.size));
  if (parts <= 1 || grains > int64_t{0xffffffff}) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  for (int t = 0; t < parts; ++t) {
    auto f = static_cast<uint64_t>(Impl::chunkBegin(grains, parts, t));
    auto b = static_cast<uint64_t>(Impl::chunkBegin(grains, parts, t + 1));
    p.shares[static_cast<size_t>(t)].range.store((f << 32) | b, std::memory_order_relaxed);
  }
  auto runGrain = [&](int64_t g) { fn(g * grain, std::min(n, (g + 1) * grain)); };
  // Chunk t of the region owns share t; a thread that runs out steals from the others.
  parallelFor(parts, [&](int, int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      std::atomic<uint64_t>& own = p.shares[static_cast<size_t>(t)].range;
      for (int64_t g = claimGrain(own, true); g >= 0; g = claimGrain(own, true)) runGrain(g);
      // Own share done: help the others, starting with the next share, from their backs.
      for (int d = 1; d < parts; ++d) {
        std::atomic<uint64_t>& other = p.shares[static_cast<size_t>((t + d) % parts)].range;
        for (int64_t g = claimGrain(other, false); g >= 0; g = claimGrain(other, false)) {
          runGrain(g);
        }
      }
    }
  });
}

}  // namespace turbine::engine::cpu
