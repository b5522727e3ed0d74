// MockEngine: the serving engine's scheduler, paged block pool, prefix caching (LRU eviction)
// and KV events, with MockRunner in place of a model: forward() computes nothing and reports
// how long the step would have taken (TimingModel). The caller owns time: step() runs one
// scheduler iteration now and returns its modelled duration, so a discrete-event simulator can
// stamp the step's outputs and events at now + duration (virtual time), and a real-time worker
// can sleep that long (--engine mock).
//
// Every sampled token is kMockToken (greedy over constant logits), so a request runs exactly
// max_tokens steps with ignore_eos. Prompt token ids must be < kMockVocab.
// Thread safety: not thread-safe; one owner drives it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "kv/block_manager.h"
#include "kv/kv_events.h"
#include "kv/load_metrics.h"
#include "mocker/mock_kv.h"
#include "mocker/timing_model.h"

namespace turbine::mocker {

inline constexpr int32_t kMockVocab = 64;
inline constexpr int32_t kMockToken = 1;

// A ModelRunner without a model: each forward() sets lastStepUs() from the timing model and
// writes logits whose argmax is kMockToken. Its KV blocks hold MockKvContents (8 bytes a block),
// so blocks move to a host tier and between engines (disaggregated serving) like a model's.
class MockRunner : public engine::ModelRunner {
 public:
  MockRunner(const TimingProfile& profile, int32_t block_size, int32_t num_blocks);
  int32_t vocabSize() const override { return kMockVocab; }
  int32_t blockSize() const override { return block_size_; }
  int32_t numBlocks() const override { return num_blocks_; }
  int32_t maxModelLen() const override { return block_size_ * num_blocks_; }
  Status forward(const engine::Batch& batch, std::span<float> logits) override;
  size_t blockBytes() const override { return MockKvContents::kBlockBytes; }
  Status readBlock(engine::BlockId block, void* dst) override { return kv_.read(block, dst); }
  Status writeBlock(engine::BlockId block, const void* src) override { return kv_.write(block, src, profile_); }
  double lastStepUs() const { return last_step_us_; }
  // Modelled time of the blocks written in (onboarded or imported) since the last call.
  double takeCopyUs() { return kv_.takeCopyUs(); }
  const MockKvContents& contents() const { return kv_; }

 private:
  TimingProfile profile_;
  int32_t block_size_;
  int32_t num_blocks_;
  MockKvContents kv_;
  double last_step_us_ = 0;
};

struct MockEngineOptions {
  std::string model_id = "mock";
  int32_t block_size = 16;
  int32_t num_blocks = 1024;
  // A host tier of this many blocks below the pool (0: none): blocks the pool evicts stay
  // there and come back for a prefix hit at profile.onboard_us_per_token instead of being
  // recomputed (kv::KvBlockManager over the runner's 8-byte blocks; its host-tier KV events are
  // emitted).
  int32_t host_blocks = 0;
  TimingProfile profile;
};

class MockEngine {
 public:
  explicit MockEngine(const MockEngineOptions& options);
  ~MockEngine();

  // Validates (InvalidArgument naming the field) and queues the request. Its kv_import (blocks
  // exported by another MockEngine) is taken as a real engine takes it: written into the pool as
  // prefix hits, each written token costing onboard_us_per_token in that step.
  Status add(engine::Request request, engine::OutputCallback callback);
  bool abort(const engine::RequestId& id) { return scheduler_.abort(id); }
  bool hasWork() const { return scheduler_.hasWork(); }
  // One iteration now; returns its modelled duration in microseconds (0 when idle).
  Result<double> step();
  // KV events since the last call (stored / removed / cleared; device and host tiers), oldest
  // first.
  std::vector<kv::KvEvent> takeEvents() { return scheduler_.pool().takeEvents(); }
  kv::LoadMetrics load(kv::WorkerId worker, int64_t ts_ms) const;

  // The prompt blocks of `hashes` this engine holds (pool or host tier), a leading run, for
  // another engine's Request::kv_import (Scheduler::exportBlocks).
  engine::KvBlocks exportBlocks(std::span<const kv::BlockHash> hashes) { return scheduler_.exportBlocks(hashes); }
  const engine::Scheduler& scheduler() const { return scheduler_; }
  const MockRunner& runner() const { return *runner_; }
  const MockEngineOptions& options() const { return options_; }

 private:
  MockEngineOptions options_;
  std::unique_ptr<MockRunner> runner_;
  std::unique_ptr<kv::KvBlockManager> host_tier_;  // before scheduler_, which points at it
  engine::Scheduler scheduler_;
};

}  // namespace turbine::mocker
