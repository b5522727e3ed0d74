// Xoshiro256: xoshiro256** seeded through splitmix64, a fixed and portable PRNG. Standard-library
// distributions differ between implementations, so anything that must be reproducible across
// machines (model weights from a seed, seeded sampling) draws from this and converts itself.
// Thread safety: a value type; one instance per thread or per request.
#pragma once

#include <cstdint>

namespace turbine {

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed = 0) {
    for (auto& s : s_) s = splitmix64(seed);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Advances `x` and returns the next splitmix64 output.
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace turbine
