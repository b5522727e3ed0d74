// Software prefetch as asm statements. Not __builtin_prefetch: GCC 12 finds a function whose
// loop only calls the builtin "looping const" and, loops being finite in C++, deletes the calls
// to it (session 11's attention and session 12's vLLM translator each lost every prefetch that
// way). An asm volatile statement cannot be dropped. Off x86-64 they fall back to the builtin.
// Thread safety: pure hints; never fault, whatever the address.
#pragma once

namespace turbine {

// Into L1 (prefetcht0).
inline void prefetchL1(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}

// Into L2 (prefetcht1).
inline void prefetchL2(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

}  // namespace turbine
