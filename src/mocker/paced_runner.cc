#include "mocker/paced_runner.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "mocker/mock_engine.h"

namespace turbine::mocker {

Result<std::unique_ptr<PacedMockRunner>> PacedMockRunner::create(const PacedRunnerOptions& options) {
  if (options.block_size < 1) return invalidArgument("mock runner: block_size must be >= 1");
  if (options.num_blocks < 1) return invalidArgument("mock runner: num_blocks must be >= 1");
  if (options.vocab_size <= kMockToken) {
    return invalidArgument("mock runner: vocab_size must be > " + std::to_string(kMockToken));
  }
  TURBINE_RETURN_IF_ERROR(validateTimingProfile(options.profile));
  PacedRunnerOptions o = options;
  const int64_t capacity = static_cast<int64_t>(o.block_size) * o.num_blocks;
  if (o.max_model_len <= 0 || o.max_model_len > capacity) {
    o.max_model_len = static_cast<int32_t>(std::min<int64_t>(capacity, 1 << 30));
  }
  return std::unique_ptr<PacedMockRunner>(new PacedMockRunner(o));
}

Status PacedMockRunner::forward(const engine::Batch& batch, std::span<float> logits) {
  const auto start = std::chrono::steady_clock::now();
  last_step_us_ = stepTimeUs(options_.profile, batch) + kv_.takeCopyUs();
  kv_.record(batch);
  const size_t vocab = static_cast<size_t>(options_.vocab_size);
  std::fill(logits.begin(), logits.end(), 0.0f);
  for (size_t row = 0; (row + 1) * vocab <= logits.size(); ++row) logits[row * vocab + kMockToken] = 1.0f;
  // Sleep what is left of the modelled step (filling the logits counted as part of it).
  std::this_thread::sleep_until(start + std::chrono::duration<double, std::micro>(last_step_us_));
  return Status::ok();
}

}  // namespace turbine::mocker
