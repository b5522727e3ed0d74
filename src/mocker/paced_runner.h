// PacedMockRunner: the simulated engine in real time (`turbine worker --engine mock`). A
// ModelRunner whose forward() computes nothing: it sleeps for the step time the TimingModel
// gives (divided by the profile's speedup) and writes logits whose argmax is kMockToken, so the
// real serving Engine around it (scheduler, paged KV pool, prefix caching, KV events, load
// metrics) behaves exactly as with a model, at the profile's speed.
// The vocabulary size is the served model's, so prompts tokenized by the model's tokenizer are
// valid; greedy requests produce kMockToken every step (sampled ones pick among equal logits).
// Thread safety: like any ModelRunner, driven by one engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "common/status.h"
#include "engine/batch.h"
#include "mocker/mock_kv.h"
#include "mocker/timing_model.h"

namespace turbine::mocker {

struct PacedRunnerOptions {
  TimingProfile profile;
  int32_t block_size = 16;
  int32_t num_blocks = 1024;
  int32_t vocab_size = 64;      // >= 2
  int32_t max_model_len = 0;    // 0: block_size * num_blocks
};

class PacedMockRunner : public engine::ModelRunner {
 public:
  // InvalidArgument naming the field when a size is out of range or the profile is invalid.
  static Result<std::unique_ptr<PacedMockRunner>> create(const PacedRunnerOptions& options);

  int32_t vocabSize() const override { return options_.vocab_size; }
  int32_t blockSize() const override { return options_.block_size; }
  int32_t numBlocks() const override { return options_.num_blocks; }
  int32_t maxModelLen() const override { return options_.max_model_len; }
  Status forward(const engine::Batch& batch, std::span<float> logits) override;
  size_t blockBytes() const override { return MockKvContents::kBlockBytes; }
  Status readBlock(engine::BlockId block, void* dst) override { return kv_.read(block, dst); }
  Status writeBlock(engine::BlockId block, const void* src) override {
    return kv_.write(block, src, options_.profile);
  }

  // Modelled duration of the last forward(), microseconds (already divided by the speedup).
  double lastStepUs() const { return last_step_us_; }

 private:
  explicit PacedMockRunner(const PacedRunnerOptions& options)
      : options_(options), kv_(options.block_size, options.num_blocks) {}

  PacedRunnerOptions options_;
  MockKvContents kv_;
  double last_step_us_ = 0;
};

}  // namespace turbine::mocker
