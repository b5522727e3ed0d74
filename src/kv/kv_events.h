// KV events (DESIGN.md §3.2): what a worker tells the router (and KVBM tiers) about the blocks its
// caches hold. One message = {worker_id, seq (consecutive per worker), events}; each event is
// stored{block_hashes, parent_hash|null, tier}, removed{block_hashes, tier} or cleared{}.
//
// In a `stored` event the hashes form a chain: block_hashes[0]'s parent is parent_hash (null for
// a first block), block_hashes[i]'s parent is block_hashes[i-1].
//
// KvBlockSet replays a stream of messages into the set of cached hashes per tier (what a router
// or a test reconstructs). Thread safety: plain values; KvBlockSet is not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <variant>
#include <vector>

#include "common/status.h"
#include "kv/block_hash.h"

namespace turbine::kv {

using WorkerId = uint64_t;

enum class Tier : uint8_t { kDevice = 0, kHost = 1, kDisk = 2, kRemote = 3 };
inline constexpr int kNumTiers = 4;

// "device", "host", "disk", "remote".
std::string_view tierName(Tier tier);
// Inverse of tierName; InvalidArgument naming the text otherwise.
Result<Tier> parseTier(std::string_view name);

struct BlockStored {
  std::vector<BlockHash> block_hashes;
  std::optional<BlockHash> parent_hash;  // nullopt: block_hashes[0] is a sequence's first block
  Tier tier = Tier::kDevice;
  bool operator==(const BlockStored&) const = default;
};

struct BlockRemoved {
  std::vector<BlockHash> block_hashes;
  Tier tier = Tier::kDevice;
  bool operator==(const BlockRemoved&) const = default;
};

// Every block of the worker, on every tier, is gone.
struct AllCleared {
  bool operator==(const AllCleared&) const = default;
};

using KvEvent = std::variant<BlockStored, BlockRemoved, AllCleared>;

struct KvEventMessage {
  WorkerId worker_id = 0;
  uint64_t seq = 0;  // consecutive per worker, starting at 0
  std::vector<KvEvent> events;
  bool operator==(const KvEventMessage&) const = default;
};

// Appends `event` to `events`, merged into the last event where that keeps the meaning: a
// `stored` that continues the last `stored` chain of the same tier (its parent is that event's
// last hash) extends it; a `removed` extends a last `removed` of the same tier.
void appendEvent(std::vector<KvEvent>& events, KvEvent event);

// The set of block hashes a worker holds per tier, rebuilt from its events.
class KvBlockSet {
 public:
  void apply(const KvEvent& event);
  // Applies every event; FailedPrecondition (applying nothing) when msg.seq is not the next
  // expected one — the caller then asks for a replay or a snapshot.
  Status apply(const KvEventMessage& msg);

  bool contains(BlockHash hash, Tier tier = Tier::kDevice) const;
  const std::unordered_set<BlockHash>& hashes(Tier tier = Tier::kDevice) const;
  size_t size(Tier tier = Tier::kDevice) const { return hashes(tier).size(); }
  std::optional<uint64_t> lastSeq() const { return last_seq_; }

 private:
  std::array<std::unordered_set<BlockHash>, kNumTiers> sets_;
  std::optional<uint64_t> last_seq_;
};

}  // namespace turbine::kv
