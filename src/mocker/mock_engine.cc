#include "mocker/mock_engine.h"

#include <algorithm>

namespace turbine::mocker {

MockRunner::MockRunner(const TimingProfile& profile, int32_t block_size, int32_t num_blocks)
    : profile_(profile), block_size_(block_size), num_blocks_(num_blocks) {}

Status MockRunner::forward(const engine::Batch& batch, std::span<float> logits) {
  last_step_us_ = stepTimeUs(profile_, batch);
  std::fill(logits.begin(), logits.end(), 0.0f);
  for (size_t row = 0; row + 1 <= logits.size() / kMockVocab; ++row) {
    logits[row * kMockVocab + kMockToken] = 1.0f;
  }
  return Status::ok();
}

namespace {

engine::SchedulerOptions schedulerOptions(const MockEngineOptions& o) {
  engine::SchedulerOptions s;
  s.model_id = o.model_id;
  s.max_num_batched_tokens = o.profile.max_num_batched_tokens;
  s.max_num_seqs = o.profile.max_num_seqs;
  s.enable_prefix_caching = true;
  return s;
}

}  // namespace

MockEngine::MockEngine(const MockEngineOptions& options)
    : options_(options),
      runner_(std::make_unique<MockRunner>(options.profile, options.block_size, options.num_blocks)),
      scheduler_(schedulerOptions(options), runner_.get()) {}

Status MockEngine::add(engine::Request request, engine::OutputCallback callback) {
  TURBINE_RETURN_IF_ERROR(engine::validateRequest(request, scheduler_.limits()));
  return scheduler_.add(std::move(request), std::move(callback));
}

Result<double> MockEngine::step() {
  if (!scheduler_.hasWork()) return 0.0;
  const int64_t steps = scheduler_.counters().steps;
  TURBINE_RETURN_IF_ERROR(scheduler_.step());
  // A step that scheduled nothing (waiting for blocks) still costs the fixed overhead, so
  // virtual time advances.
  if (scheduler_.counters().steps == steps || scheduler_.lastBatchTokens() == 0) {
    return options_.profile.step_base_us / options_.profile.speedup;
  }
  return runner_->lastStepUs();
}

kv::LoadMetrics MockEngine::load(kv::WorkerId worker, int64_t ts_ms) const {
  const auto& pool = scheduler_.pool();
  kv::LoadMetrics m;
  m.worker_id = worker;
  m.running = scheduler_.numRunning();
  m.waiting = scheduler_.numWaitingRequests();
  m.kv_blocks_total = pool.numBlocks();
  m.kv_blocks_used = pool.numUsed();
  m.kv_blocks_cached_free = pool.numCachedFree();
  m.ts_ms = ts_ms;
  return m;
}

}  // namespace turbine::mocker
