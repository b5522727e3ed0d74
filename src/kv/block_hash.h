// Block hashing (DESIGN.md §3.1): the one function the engine, KVBM, router and simulator use to
// name a KV block by its whole prefix.
//
//   root     = XXH3_64bits(model_id || 0x00 || salt)
//   hash[0]  = XXH3_64bits_withSeed(tokens[0..B) as little-endian uint32, seed = root)
//   hash[i]  = XXH3_64bits_withSeed(tokens[iB..(i+1)B) as LE uint32, seed = hash[i-1])
//
// Only full blocks are hashed. Because of the chain, two sequences share block i if and only if
// they share blocks 0..i. Thread safety: pure functions, safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace turbine::kv {

using BlockHash = uint64_t;

// The chain's seed. `salt` is empty unless the request names an adapter or a cache_salt.
BlockHash rootHash(std::string_view model_id, std::string_view salt);

// Hash of one block of tokens given the hash of the block before it (or the root).
BlockHash hashBlock(BlockHash parent, std::span<const int32_t> tokens);

// Appends to `hashes` the hashes of the full blocks of `tokens` that it does not hold yet
// (hashes.size() blocks are assumed already hashed, from the same root and tokens).
// Requires block_size > 0.
void extendBlockHashes(BlockHash root, std::span<const int32_t> tokens, int32_t block_size,
                       std::vector<BlockHash>& hashes);

// Hashes of every full block of `tokens` (tokens.size() / block_size of them).
std::vector<BlockHash> blockHashes(BlockHash root, std::span<const int32_t> tokens,
                                   int32_t block_size);

}  // namespace turbine::kv
