// Bit counting without a library call. Built for baseline x86-64 (no -mpopcnt), std::popcount
// compiles to a call into libgcc (__popcountdi2: 1.2% of router_bench's steady state on its own,
// plus the call's spills in the loops around it); this SWAR count is a dozen inline
// instructions, and the builtin's single instruction where the target has POPCNT.
#pragma once

#include <cstdint>

namespace turbine {

inline int popcount64(uint64_t x) {
#if defined(__POPCNT__) || !defined(__x86_64__)
  return __builtin_popcountll(x);
#else
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<int>((x * 0x0101010101010101ull) >> 56);
#endif
}

}  // namespace turbine
