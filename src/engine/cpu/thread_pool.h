// ThreadPool: a fork-join pool for kernels. The calling thread takes part in the work; workers
// spin briefly before sleeping so that the many short parallel regions of a decode step
// (several per layer) cost microseconds, not a futex round trip each.
// Thread safety: parallelFor may be called from one thread at a time (the step loop).
#pragma once

#include <cstdint>
#include <functional>

namespace turbine::engine::cpu {

class ThreadPool {
 public:
  // n_threads <= 0: all online cores.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // Calls fn(thread_index, begin, end) on disjoint ranges covering [0, n), in parallel;
  // returns when all are done. Ranges are contiguous, at most size() of them.
  void parallelFor(int64_t n, const std::function<void(int thread, int64_t begin, int64_t end)>& fn);

  // Calls fn(begin, end) on disjoint ranges of at most `grain` items covering [0, n). Each
  // thread starts on a contiguous share of [0, n) and walks it front to back (one stream per
  // thread, as parallelFor); a thread whose share is done takes grains from the back of the
  // others' shares, so no thread idles while another has a grain left to start.
  void parallelForBalanced(int64_t n, int64_t grain,
                           const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace turbine::engine::cpu
