// MockKvContents: what the simulated engine keeps in its KV blocks instead of keys and values: one
// 8-byte value per block, folded from the token ids and offsets written into it. Blocks copied out
// of a mock runner and into another (the KV tiers, disaggregated serving's transfer) therefore
// carry bytes that depend on what was computed, at 8 bytes a block, and a copy costs the profile's
// onboard_us_per_token per token written into the pool (the import copy of a real engine).
// Thread safety: not thread-safe; used from the runner's owner (the engine's step loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/status.h"
#include "engine/batch.h"
#include "mocker/timing_model.h"

namespace turbine::mocker {

class MockKvContents {
 public:
  static constexpr size_t kBlockBytes = sizeof(uint64_t);

  MockKvContents(int32_t block_size, int32_t num_blocks);

  // forward(): folds every token of the batch into the block its position falls in (a block
  // starts over at its first offset, so its value depends only on its tokens).
  void record(const engine::Batch& batch);
  // ModelRunner::readBlock / writeBlock; OutOfRange for a block id outside the pool. write()
  // also adds the copy's modelled time (block_size tokens at onboard_us_per_token / speedup).
  Status read(engine::BlockId block, void* dst) const;
  Status write(engine::BlockId block, const void* src, const TimingProfile& profile);
  // Modelled copy time since the last call (microseconds, already divided by the speedup).
  double takeCopyUs();
  uint64_t value(engine::BlockId block) const { return values_.at(static_cast<size_t>(block)); }

 private:
  int32_t block_size_;
  std::vector<uint64_t> values_;
  double copy_us_ = 0;
};

}  // namespace turbine::mocker
