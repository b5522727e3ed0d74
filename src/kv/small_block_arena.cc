#include "kv/small_block_arena.h"

#include <bit>
#include <cstdint>

#include "kv/huge_page_allocator.h"

namespace turbine::kv {

SmallBlockArena& SmallBlockArena::instance() {
  static SmallBlockArena* arena = new SmallBlockArena();  // leaked on purpose: see the header
  return *arena;
}

int SmallBlockArena::classOf(size_t bytes) {
  const size_t rounded = std::bit_ceil(bytes < kMinBlock ? kMinBlock : bytes);
  return std::countr_zero(rounded) - std::countr_zero(kMinBlock);
}

void* SmallBlockArena::allocate(size_t bytes) {
  const int c = classOf(bytes);
  const size_t size = kMinBlock << c;
  std::lock_guard lock(mu_);
  live_bytes_ += size;
  if (FreeBlock* b = free_[c]) {
    free_[c] = b->next;
    return b;
  }
  // Carve from the current chunk, aligned to the block's size up to a cache line.
  const size_t align = size < 64 ? size : 64;
  auto p = (reinterpret_cast<uintptr_t>(bump_) + align - 1) & ~(uintptr_t{align} - 1);
  if (bump_ == nullptr || p + size > reinterpret_cast<uintptr_t>(end_)) {
    // The rest of the old chunk is left unused (at most one 64 KiB block's worth of a 2 MiB one).
    void* chunk = nullptr;
    try {
      chunk = allocateHugePages(kChunk);
      chunks_.push_back(chunk);
    } catch (const std::bad_alloc&) {
      if (chunk != nullptr) freeHugePages(chunk, kChunk);
      live_bytes_ -= size;
      throw;
    }
    bump_ = static_cast<char*>(chunk);
    end_ = bump_ + kChunk;
    p = reinterpret_cast<uintptr_t>(bump_);
  }
  bump_ = reinterpret_cast<char*>(p + size);
  return reinterpret_cast<void*>(p);
}

void SmallBlockArena::deallocate(void* p, size_t bytes) {
  if (p == nullptr) return;
  const int c = classOf(bytes);
  std::lock_guard lock(mu_);
  live_bytes_ -= kMinBlock << c;
  auto* b = static_cast<FreeBlock*>(p);
  b->next = free_[c];
  free_[c] = b;
}

SmallBlockArena::Stats SmallBlockArena::stats() const {
  std::lock_guard lock(mu_);
  return Stats{chunks_.size() * kChunk, live_bytes_};
}

}  // namespace turbine::kv
