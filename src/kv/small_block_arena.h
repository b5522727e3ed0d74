// SmallBlockArena: small allocations (16 B to 64 KiB, power-of-two size classes) carved from
// 2 MiB chunks advised as transparent huge pages, with one free list per class. HugePageAllocator
// serves its small allocations from here; the prefix index's holder sets are most of them:
// hundreds of thousands of 8-256 byte lists and bitsets, read at random by every walk and event.
//
// Why not malloc: its heap is backed by 4 KiB pages, so every fresh page of a growing index is
// one page fault in the router's hot path, and random reads of the lists miss the TLB. On the
// KVM guest of docs/benchmarks.md a 4 KiB first-touch fault costs ~12 us, and a growing
// prediction set faulted ~650 times in 200,000 steady-state decisions: that alone put the
// decision p99 over 10 us. Here a chunk faults once per 2 MiB (where THP is available).
//
// Blocks are aligned to their size up to 64 bytes, so a list of up to 16 holders never straddles
// a cache line. Freed blocks go to their class's free list and are reused; chunks are never
// returned to the system (an index's working size comes back).
// Thread safety: thread-safe (one mutex; allocations are rare next to reads).
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <vector>

namespace turbine::kv {

class SmallBlockArena {
 public:
  static constexpr size_t kMinBlock = 16;
  static constexpr size_t kMaxBlock = size_t{64} << 10;
  static constexpr size_t kChunk = size_t{2} << 20;  // one huge page

  // The process-wide arena (never destroyed, so blocks may be freed during static destruction).
  static SmallBlockArena& instance();

  // bytes in [1, kMaxBlock]; never returns nullptr (throws std::bad_alloc).
  void* allocate(size_t bytes);
  // p from allocate() with the same byte count.
  void deallocate(void* p, size_t bytes);

  struct Stats {
    size_t chunk_bytes = 0;  // reserved from the system
    size_t live_bytes = 0;   // in blocks handed out (rounded up to their class)
  };
  Stats stats() const;

 private:
  static constexpr int kClasses = 13;  // 16 B .. 64 KiB
  static int classOf(size_t bytes);
  struct FreeBlock {
    FreeBlock* next;
  };
  mutable std::mutex mu_;
  std::array<FreeBlock*, kClasses> free_{};
  char* bump_ = nullptr;  // the current chunk's unused part
  char* end_ = nullptr;
  std::vector<void*> chunks_;
  size_t live_bytes_ = 0;
};

}  // namespace turbine::kv
