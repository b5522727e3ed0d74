// Test doubles for ModelRunner.
//
// FakeRunner keeps a real paged "KV cache" (the token id and position written into each slot)
// and computes each logits row as a pseudo-random function of the WHOLE prefix it reads back
// through the block table. Any scheduling or caching bug (a wrong block table, a block evicted
// or overwritten while in use, a skipped or duplicated token) changes the prefix it reads and
// hence the tokens. Reading a slot that was never written for that position is an error.
// Its blocks can be copied out and back (blockBytes / readBlock / writeBlock: each slot's token
// and position), so KV tiers work over it and a wrong copy changes the tokens too.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/request.h"

namespace turbine::engine::testing {

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Logits of the fake model after `prefix`: vocab pseudo-random values in [-4, 4).
inline void fakeLogits(std::span<const int32_t> prefix, std::span<float> out) {
  uint64_t h = 0x1234;
  for (int32_t t : prefix) h = mix64(h ^ (static_cast<uint64_t>(t) + 0x9e3779b97f4a7c15ull));
  for (size_t v = 0; v < out.size(); ++v) {
    const uint64_t r = mix64(h + 0x632be59bd9b4e019ull * (v + 1));
    out[v] = static_cast<float>(static_cast<double>(r >> 11) * 0x1.0p-53 * 8.0 - 4.0);
  }
}

// Greedy continuation of `prompt` under the fake model: what a request must produce alone.
inline std::vector<int32_t> fakeGreedy(std::vector<int32_t> prompt, int32_t vocab, int32_t n) {
  std::vector<float> logits(static_cast<size_t>(vocab));
  std::vector<int32_t> out;
  for (int32_t i = 0; i < n; ++i) {
    fakeLogits(prompt, logits);
    int32_t best = 0;
    for (int32_t v = 1; v < vocab; ++v) best = logits[v] > logits[best] ? v : best;
    out.push_back(best);
    prompt.push_back(best);
  }
  return out;
}

class FakeRunner : public ModelRunner {
 public:
  FakeRunner(int32_t vocab, int32_t block_size, int32_t num_blocks, int32_t max_model_len)
      : vocab_(vocab), block_size_(block_size), num_blocks_(num_blocks),
        max_model_len_(max_model_len),
        slot_token_(static_cast<size_t>(num_blocks) * block_size, -1),
        slot_pos_(static_cast<size_t>(num_blocks) * block_size, -1) {}

  int32_t vocabSize() const override { return vocab_; }
  int32_t blockSize() const override { return block_size_; }
  int32_t numBlocks() const override { return num_blocks_; }
  int32_t maxModelLen() const override { return max_model_len_; }

  Status forward(const Batch& batch, std::span<float> logits) override {
    if (fail_next) {
      fail_next = false;
      return internalError("injected failure");
    }
    ++calls;
    tokens_computed += batch.numTokens();
    max_batch_tokens = std::max<int64_t>(max_batch_tokens, batch.numTokens());
    max_batch_seqs = std::max<int64_t>(max_batch_seqs, static_cast<int64_t>(batch.seqs.size()));
    if (on_forward) on_forward(batch);
    std::vector<int64_t> written;
    for (const auto& s : batch.seqs) {
      const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
      if (static_cast<int64_t>(s.block_table.size()) * block_size_ < end)
        return internalError("block table too short");
      for (size_t i = 0; i < s.tokens.size(); ++i) {
        const int64_t pos = s.start_pos + static_cast<int64_t>(i);
        const int64_t slot = slotOf(s.block_table, pos);
        if (slot < 0) return internalError("bad block id");
        written.push_back(slot);
        slot_token_[slot] = s.tokens[i];
        slot_pos_[slot] = static_cast<int32_t>(pos);
      }
    }
    std::sort(written.begin(), written.end());
    if (std::adjacent_find(written.begin(), written.end()) != written.end())
      return internalError("two tokens of one step write the same KV slot");
    size_t row = 0;
    std::vector<int32_t> prefix;
    for (const auto& s : batch.seqs) {
      const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
      for (int64_t last = end - s.num_logits; last < end; ++last) {  // the row of position `last`
        prefix.clear();
        for (int64_t pos = 0; pos <= last; ++pos) {
          const int64_t slot = slotOf(s.block_table, pos);
          if (slot_pos_[slot] != pos) return internalError("KV slot holds another position");
          prefix.push_back(slot_token_[slot]);
        }
        fakeLogits(prefix, logits.subspan(row * vocab_, vocab_));
        ++row;
      }
    }
    return Status::ok();
  }

  size_t blockBytes() const override { return 2 * sizeof(int32_t) * static_cast<size_t>(block_size_); }
  Status readBlock(BlockId block, void* dst) override {
    if (block < 0 || block >= num_blocks_) return internalError("bad block id");
    const size_t n = static_cast<size_t>(block_size_), at = static_cast<size_t>(block) * n;
    std::memcpy(dst, &slot_token_[at], n * sizeof(int32_t));
    std::memcpy(static_cast<int32_t*>(dst) + n, &slot_pos_[at], n * sizeof(int32_t));
    ++blocks_read;
    return Status::ok();
  }
  Status writeBlock(BlockId block, const void* src) override {
    if (block < 0 || block >= num_blocks_) return internalError("bad block id");
    const size_t n = static_cast<size_t>(block_size_), at = static_cast<size_t>(block) * n;
    std::memcpy(&slot_token_[at], src, n * sizeof(int32_t));
    std::memcpy(&slot_pos_[at], static_cast<const int32_t*>(src) + n, n * sizeof(int32_t));
    ++blocks_written;
    return Status::ok();
  }

  bool fail_next = false;
  int64_t calls = 0;
  int64_t blocks_read = 0;     // block copies out (offloads) and in (onboards)
  int64_t blocks_written = 0;
  int64_t tokens_computed = 0;  // tokens of all forward() calls
  int64_t max_batch_tokens = 0;
  int64_t max_batch_seqs = 0;
  std::function<void(const Batch&)> on_forward;

 private:
  int64_t slotOf(std::span<const BlockId> table, int64_t pos) const {
    const BlockId b = table[pos / block_size_];
    if (b < 0 || b >= num_blocks_) return -1;
    return static_cast<int64_t>(b) * block_size_ + pos % block_size_;
  }

  int32_t vocab_, block_size_, num_blocks_, max_model_len_;
  std::vector<int32_t> slot_token_;
  std::vector<int32_t> slot_pos_;
};

// Does nothing: all-zero logits (greedy picks token 0). For scheduler overhead benchmarks.
class NoopRunner : public ModelRunner {
 public:
  NoopRunner(int32_t vocab, int32_t block_size, int32_t num_blocks, int32_t max_model_len)
      : vocab_(vocab), block_size_(block_size), num_blocks_(num_blocks),
        max_model_len_(max_model_len) {}
  int32_t vocabSize() const override { return vocab_; }
  int32_t blockSize() const override { return block_size_; }
  int32_t numBlocks() const override { return num_blocks_; }
  int32_t maxModelLen() const override { return max_model_len_; }
  Status forward(const Batch&, std::span<float>) override { return Status::ok(); }

 private:
  int32_t vocab_, block_size_, num_blocks_, max_model_len_;
};

// A greedy request that generates exactly max_tokens tokens (EOS ignored).
inline Request greedyRequest(const std::string& id, std::vector<int32_t> prompt, int32_t max_tokens) {
  Request r;
  r.request_id = id;
  r.token_ids = std::move(prompt);
  r.sampling.temperature = 0;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

inline std::vector<int32_t> randomPrompt(std::mt19937& rng, int32_t len, int32_t vocab) {
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return p;
}

}  // namespace turbine::engine::testing
