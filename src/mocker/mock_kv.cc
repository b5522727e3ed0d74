#include "mocker/mock_kv.h"

#include <cstring>
#include <string>

namespace turbine::mocker {

namespace {

// FNV-1a style: two dependent operations a token (the simulator folds every computed token).
uint64_t mix(uint64_t h, uint64_t x) { return (h ^ x) * 0x100000001b3ULL; }

}  // namespace

MockKvContents::MockKvContents(int32_t block_size, int32_t num_blocks)
    : block_size_(block_size), values_(static_cast<size_t>(num_blocks), 0) {}

void MockKvContents::record(const engine::Batch& batch) {
  for (const engine::SequenceChunk& s : batch.seqs) {
    // One division per chunk; then the slot and the offset advance with the position.
    size_t slot = static_cast<size_t>(s.start_pos / block_size_);
    int32_t offset = s.start_pos % block_size_;
    for (size_t k = 0; k < s.tokens.size(); ++k) {
      if (slot >= s.block_table.size()) break;  // the scheduler always covers the chunk
      const auto block = static_cast<size_t>(s.block_table[slot]);
      if (block < values_.size()) {
        uint64_t& v = values_[block];
        if (offset == 0) v = 0xcbf29ce484222325ULL;
        v = mix(v, (static_cast<uint64_t>(offset) << 32) | static_cast<uint32_t>(s.tokens[k]));
      }
      if (++offset == block_size_) offset = 0, ++slot;
    }
  }
}

Status MockKvContents::read(engine::BlockId block, void* dst) const {
  if (block < 0 || static_cast<size_t>(block) >= values_.size()) {
    return outOfRange("mock KV block " + std::to_string(block) + " is outside the pool");
  }
  std::memcpy(dst, &values_[static_cast<size_t>(block)], kBlockBytes);
  return Status::ok();
}

Status MockKvContents::write(engine::BlockId block, const void* src, const TimingProfile& profile) {
  if (block < 0 || static_cast<size_t>(block) >= values_.size()) {
    return outOfRange("mock KV block " + std::to_string(block) + " is outside the pool");
  }
  std::memcpy(&values_[static_cast<size_t>(block)], src, kBlockBytes);
  copy_us_ += static_cast<double>(block_size_) * profile.onboard_us_per_token / profile.speedup;
  return Status::ok();
}

double MockKvContents::takeCopyUs() {
  const double us = copy_us_;
  copy_us_ = 0;
  return us;
}

}  // namespace turbine::mocker
