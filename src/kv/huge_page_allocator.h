// HugePageAllocator: the std::allocator of the router's index (its tables, holder sets and
// prediction LRU), so that neither random probes nor growth pay for 4 KiB pages:
//   - 2 MiB and more: a mapping of its own, 2 MiB-aligned and advised as transparent huge pages
//     (Linux madvise), so a probe into a table of hundreds of MB pays no page walk on top of its
//     cache miss (the router's lookups are bound by these misses);
//   - up to SmallBlockArena::kMaxBlock (64 KiB): a block of the process-wide SmallBlockArena
//     (power-of-two classes carved from huge-page chunks), aligned to its size up to 64 bytes;
//   - in between: operator new, 64-byte aligned.
// Every table the index homes its probes in is at least 64 bytes, so its lines are aligned.
// Where huge pages are unavailable the advice is ignored and the memory behaves as usual.
// Thread safety: stateless (the arena locks).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <utility>

#include "kv/small_block_arena.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace turbine::kv {

// `bytes` (a multiple of kHugePageBytes) on 2 MiB-aligned pages of their own mapping, advised as
// huge pages. A mapping of its own, not the malloc heap: a heap range that already holds 4 KiB
// pages (memory used and freed before) keeps faulting 4 KiB at a time, whatever the advice.
inline constexpr size_t kHugePageBytes = size_t{2} << 20;
// `bytes` rounded up to whole huge pages, as allocateHugePages maps them.
inline constexpr size_t hugePageRounded(size_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}
inline void* allocateHugePages(size_t bytes) {
#if defined(__linux__)
  const size_t span = bytes + kHugePageBytes;
  void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t p = (base + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  if (p > base) munmap(m, p - base);  // trim to the alignment
  if (const uintptr_t end = base + span; end > p + bytes) {
    munmap(reinterpret_cast<void*>(p + bytes), end - (p + bytes));
  }
#if defined(MADV_HUGEPAGE)
  madvise(reinterpret_cast<void*>(p), bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  return reinterpret_cast<void*>(p);
#else
  void* p = std::aligned_alloc(kHugePageBytes, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
#endif
}
inline void freeHugePages(void* p, size_t bytes) {
#if defined(__linux__)
  munmap(p, bytes);
#else
  (void)bytes;
  std::free(p);
#endif
}

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHugePage = kHugePageBytes;
  static constexpr std::align_val_t kLine{64};

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: converting, as allocators are

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes <= SmallBlockArena::kMaxBlock) {
      return static_cast<T*>(SmallBlockArena::instance().allocate(bytes));
    }
    if (bytes < kHugePage) return static_cast<T*>(::operator new(bytes, kLine));
    return static_cast<T*>(allocateHugePages(hugePageRounded(bytes)));
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes <= SmallBlockArena::kMaxBlock) {
      SmallBlockArena::instance().deallocate(p, bytes);
    } else if (bytes < kHugePage) {
      ::operator delete(p, kLine);
    } else {
      freeHugePages(p, hugePageRounded(bytes));
    }
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }

};

// n objects of T on HugePageAllocator memory, not initialised (a mapping of its own, 2 MiB and
// more, reads as zeros); move-only. For tables that grow by hand (no copy, no fill).
template <class T>
class HugeArray {
 public:
  HugeArray() = default;
  explicit HugeArray(size_t n) : data_(HugePageAllocator<T>().allocate(n)), size_(n) {}
  HugeArray(HugeArray&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  HugeArray& operator=(HugeArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  ~HugeArray() {
    if (data_ != nullptr) HugePageAllocator<T>().deallocate(data_, size_);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

// Faults in a range on a thread of its own (MADV_POPULATE_WRITE, Linux 5.14+; elsewhere it does
// nothing and the pages fault when first written), so that a table prepared ahead of a doubling
// does not make the doubling wait for this guest's 2 MiB page faults (~3 ms each). The range
// must stay mapped until join() (the destructor joins).
class Prefaulter {
 public:
  Prefaulter() = default;
  Prefaulter(const Prefaulter&) = delete;
  Prefaulter& operator=(const Prefaulter&) = delete;
  ~Prefaulter() { cancel(); }
  void start(void* p, size_t bytes) {
    join();
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
    done_.store(false, std::memory_order_relaxed);
    stop_.store(false, std::memory_order_relaxed);
    // One huge page per call: the call holds the address space's lock, and a thread of the
    // process that maps memory meanwhile (malloc growing its heap) waits for it (one call for
    // 128 MB stalled a router's decision 195 ms).
    thread_ = std::thread([this, p, bytes] {
      for (size_t off = 0; off < bytes && !stop_.load(std::memory_order_relaxed); off += kHugePageBytes) {
        madvise(static_cast<char*>(p) + off, std::min(kHugePageBytes, bytes - off), MADV_POPULATE_WRITE);
      }
      done_.store(true, std::memory_order_release);
    });
#else
    (void)p;
    (void)bytes;
#endif
  }
  // Whether the last start()'s range is faulted in (or nothing was started).
  bool done() const { return done_.load(std::memory_order_acquire); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // Stops after the page in progress and joins (the rest faults when first written).
  void cancel() {
    stop_.store(true, std::memory_order_relaxed);
    join();
  }

 private:
  std::atomic<bool> done_{true};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace turbine::kv
