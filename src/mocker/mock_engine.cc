#include "mocker/mock_engine.h"

#include <algorithm>

namespace turbine::mocker {

MockRunner::MockRunner(const TimingProfile& profile, int32_t block_size, int32_t num_blocks)
    : profile_(profile), block_size_(block_size), num_blocks_(num_blocks), kv_(block_size, num_blocks) {}

Status MockRunner::forward(const engine::Batch& batch, std::span<float> logits) {
  last_step_us_ = stepTimeUs(profile_, batch);
  kv_.record(batch);
  std::fill(logits.begin(), logits.end(), 0.0f);
  for (size_t row = 0; row + 1 <= logits.size() / kMockVocab; ++row) {
    logits[row * kMockVocab + kMockToken] = 1.0f;
  }
  return Status::ok();
}

namespace {

std::unique_ptr<kv::KvBlockManager> hostTier(const MockEngineOptions& o) {
  if (o.host_blocks <= 0) return nullptr;
  kv::KvBlockManagerOptions m;
  m.host_blocks = o.host_blocks;
  m.block_bytes = MockKvContents::kBlockBytes;
  auto r = kv::KvBlockManager::create(m);
  return r.isOk() ? std::move(r).value() : nullptr;  // cannot fail without memory or files
}

engine::SchedulerOptions schedulerOptions(const MockEngineOptions& o, kv::KvBlockManager* tier) {
  engine::SchedulerOptions s;
  s.block_manager = tier;
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
      host_tier_(hostTier(options)),
      scheduler_(schedulerOptions(options, host_tier_.get()), runner_.get()) {}

MockEngine::~MockEngine() = default;

Status MockEngine::add(engine::Request request, engine::OutputCallback callback) {
  TURBINE_RETURN_IF_ERROR(engine::validateRequest(request, scheduler_.limits()));
  return scheduler_.add(std::move(request), std::move(callback));
}

Result<double> MockEngine::step() {
  if (!scheduler_.hasWork()) return 0.0;
  const int64_t steps = scheduler_.counters().steps;
  TURBINE_RETURN_IF_ERROR(scheduler_.step());
  const double onboard_us = runner_->takeCopyUs();  // blocks copied in from the tier or an import
  // A step that scheduled nothing (waiting for blocks) still costs the fixed overhead, so
  // virtual time advances.
  if (scheduler_.counters().steps == steps || scheduler_.lastBatchTokens() == 0) {
    return options_.profile.step_base_us / options_.profile.speedup + onboard_us;
  }
  return runner_->lastStepUs() + onboard_us;
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
