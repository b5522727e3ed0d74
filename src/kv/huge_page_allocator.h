// HugePageAllocator: a std::allocator for the index's big flat tables. Allocations of 2 MiB and
// more are 2 MiB-aligned and advised as transparent huge pages (Linux madvise), so that random
// probes into a table of hundreds of MB do not pay a TLB miss (page walk) on top of the cache
// miss: the router's lookups are bound by these misses. Smaller ones use operator new, aligned
// to a 64-byte line (the prefix index homes its probes on line starts). Where huge pages are
// unavailable the advice is ignored and the memory behaves as usual.
// Thread safety: stateless.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace turbine::kv {

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr std::align_val_t kLine{64};

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: converting, as allocators are

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return static_cast<T*>(::operator new(bytes, kLine));
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePage) {
      ::operator delete(p, kLine);
    } else {
      std::free(p);
    }
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
};

}  // namespace turbine::kv
