#include "kv/block_hash.h"

#include <xxhash.h>

#include <bit>
#include <cstring>
#include <string>

namespace turbine::kv {

BlockHash rootHash(std::string_view model_id, std::string_view salt) {
  std::string buf;
  buf.reserve(model_id.size() + 1 + salt.size());
  buf.append(model_id);
  buf.push_back('\0');
  buf.append(salt);
  return XXH3_64bits(buf.data(), buf.size());
}

BlockHash hashBlock(BlockHash parent, std::span<const int32_t> tokens) {
  if constexpr (std::endian::native == std::endian::little) {
    return XXH3_64bits_withSeed(tokens.data(), tokens.size() * sizeof(int32_t), parent);
  } else {
    std::vector<uint8_t> le(tokens.size() * 4);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const auto v = static_cast<uint32_t>(tokens[i]);
      for (int b = 0; b < 4; ++b) le[i * 4 + b] = static_cast<uint8_t>(v >> (8 * b));
    }
    return XXH3_64bits_withSeed(le.data(), le.size(), parent);
  }
}

void extendBlockHashes(BlockHash root, std::span<const int32_t> tokens, int32_t block_size,
                       std::vector<BlockHash>& hashes) {
  const size_t bs = static_cast<size_t>(block_size);
  const size_t full = tokens.size() / bs;
  for (size_t i = hashes.size(); i < full; ++i) {
    const BlockHash parent = i == 0 ? root : hashes[i - 1];
    hashes.push_back(hashBlock(parent, tokens.subspan(i * bs, bs)));
  }
}

std::vector<BlockHash> blockHashes(BlockHash root, std::span<const int32_t> tokens,
                                   int32_t block_size) {
  std::vector<BlockHash> out;
  out.reserve(tokens.size() / static_cast<size_t>(block_size));
  extendBlockHashes(root, tokens, block_size, out);
  return out;
}

}  // namespace turbine::kv
