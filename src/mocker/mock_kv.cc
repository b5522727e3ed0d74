#include "mocker/mock_kv.h"

#include <cstring>
#include <string>

namespace turbine::mocker {

namespace {

uint64_t mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

}  // namespace

MockKvContents::MockKvContents(int32_t block_size, int32_t num_blocks)
    : block_size_(block_size), values_(static_cast<size_t>(num_blocks), 0) {}

void MockKvContents::record(const engine::Batch& batch) {
  for (const engine::SequenceChunk& s : batch.seqs) {
    for (size_t k = 0; k < s.tokens.size(); ++k) {
      const int64_t pos = s.start_pos + static_cast<int64_t>(k);
      const auto slot = static_cast<size_t>(pos / block_size_);
      if (slot >= s.block_table.size()) break;  // the scheduler always covers the chunk
      const auto block = static_cast<size_t>(s.block_table[slot]);
      if (block >= values_.size()) continue;
      const int64_t offset = pos % block_size_;
      uint64_t& v = values_[block];
      if (offset == 0) v = 0;
      v = mix(v, (static_cast<uint64_t>(offset) << 32) | static_cast<uint32_t>(s.tokens[k]));
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
