// Scheduler / engine-loop overhead with a no-op ModelRunner (issue 3 §5): how many steps/s and
// requests/s the step loop sustains at 64 concurrent sequences, i.e. the per-step cost that a
// real forward pass would pay on top of its own time.
//   BM_SchedulerDecodeStep/<vocab>: one Scheduler::step() with 64 running decodes (schedule,
//     batch build, greedy sampling of 64 rows of <vocab> logits, block commits), single thread.
//   BM_EngineRequests/<vocab>: requests (16-token prompt, 16 generated) pushed through the
//     threaded Engine with 64 in flight; reports requests/s, steps/s and µs per step.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "engine/scheduler.h"

namespace turbine::engine {
namespace {

class NoopRunner : public ModelRunner {
 public:
  NoopRunner(int32_t vocab, int32_t blocks) : vocab_(vocab), blocks_(blocks) {}
  int32_t vocabSize() const override { return vocab_; }
  int32_t blockSize() const override { return 16; }
  int32_t numBlocks() const override { return blocks_; }
  int32_t maxModelLen() const override { return 1 << 20; }
  Status forward(const Batch&, std::span<float>) override { return Status::ok(); }

 private:
  int32_t vocab_, blocks_;
};

Request makeRequest(int64_t i, int32_t prompt_len, int32_t max_tokens) {
  Request r;
  r.request_id = "r" + std::to_string(i);
  r.token_ids.resize(static_cast<size_t>(prompt_len));
  for (int32_t t = 0; t < prompt_len; ++t) r.token_ids[t] = static_cast<int32_t>((i * 31 + t) % 200);
  r.sampling.temperature = 0;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

void BM_SchedulerDecodeStep(benchmark::State& state) {
  const auto vocab = static_cast<int32_t>(state.range(0));
  NoopRunner runner(vocab, 64 * 512);
  SchedulerOptions o;
  o.model_id = "bench";
  Scheduler sched(o, &runner);
  std::atomic<int64_t> finished{0};
  int64_t next = 0;
  for (; next < 64; ++next) {
    (void)sched.add(makeRequest(next, 16, 4000), [&](Output&& out) { finished += out.finished(); });
  }
  for (int i = 0; i < 3; ++i) (void)sched.step();  // prefills done: 64 decodes per step
  for (auto _ : state) {
    (void)sched.step();
    while (sched.numRunning() + sched.numWaiting() < 64) {
      (void)sched.add(makeRequest(next++, 16, 4000), [&](Output&& out) {
        finished += out.finished();
      });
    }
  }
  state.counters["seqs_per_step"] = sched.lastBatchSeqs();
  state.counters["steps_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SchedulerDecodeStep)->Arg(256)->Arg(32000)->Arg(128256)->Unit(benchmark::kMicrosecond);

void BM_EngineRequests(benchmark::State& state) {
  const auto vocab = static_cast<int32_t>(state.range(0));
  constexpr int64_t kRequests = 2000;
  constexpr int32_t kInFlight = 64;
  double steps = 0, overhead_us = 0, seconds = 0;
  for (auto _ : state) {
    EngineOptions o;
    o.model_id = "bench";
    o.max_num_seqs = kInFlight;
    o.max_waiting = 4096;
    auto engine = std::move(Engine::create(std::make_unique<NoopRunner>(vocab, 64 * 64), o)).value();
    (void)engine->stats();
    std::atomic<int64_t> done{0}, in_flight{0};
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < kRequests; ++i) {
      while (in_flight.load() >= kInFlight) std::this_thread::yield();
      ++in_flight;
      (void)engine->add(makeRequest(i, 16, 16), [&](Output&& out) {
        if (out.finished()) --in_flight, ++done;
      });
    }
    while (done.load() < kRequests) std::this_thread::yield();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const EngineStats st = engine->stats();
    steps += static_cast<double>(st.steps);
    overhead_us += st.overhead_us_per_step;
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["requests_per_s"] = static_cast<double>(kRequests) * iters / seconds;
  state.counters["steps_per_s"] = steps / seconds;
  state.counters["us_per_step"] = overhead_us / iters;
}
BENCHMARK(BM_EngineRequests)->Arg(256)->Arg(32000)->Unit(benchmark::kMillisecond)->Iterations(3)
    ->UseRealTime();

}  // namespace
}  // namespace turbine::engine

BENCHMARK_MAIN();
