// KV event wire formats (DESIGN.md §3.2): ZeroMQ multipart frames [topic, seq as 8-byte
// big-endian, MessagePack payload], carrying either
//   - Turbine's own KvEventMessage: payload map {"worker_id", "seq", "events": [map per event:
//     {"type": "stored", "block_hashes", "parent_hash" (uint or nil), "tier"} |
//     {"type": "removed", "block_hashes", "tier"} | {"type": "cleared"}]}, or
//   - vLLM's KVEventBatch (vllm/distributed/kv_events.py, msgspec array_like structs, events
//     tagged by class name): [ts, [event...], data_parallel_rank?], each event
//     ["BlockStored", block_hashes, parent_block_hash|nil, token_ids, block_size, lora_id|nil,
//      medium?...] | ["BlockRemoved", block_hashes, medium?...] | ["AllBlocksCleared"].
//     Trailing fields left at their defaults may be absent (omit_defaults); later fields that
//     newer vLLM versions append are ignored. Block hashes are ints or (newer vLLM) bytes; bytes
//     are folded to 64 bits with XXH3. medium: "GPU"/"cuda" -> device, "CPU" -> host,
//     "DISK" -> disk, anything else or absent -> device.
// vLLM's hashes are vLLM's own, not DESIGN.md §3.1 chains: a router fed by vLLM workers must
// compute request hashes the way that engine does (or re-hash from token_ids); this decoder
// only translates the format.
// Thread safety: pure functions. Errors: DataLoss naming the frame/field that is malformed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kv/kv_events.h"

namespace turbine::kv {

struct EventFrames {
  std::string topic;
  uint64_t seq = 0;
  std::string payload;  // MessagePack
};

// The 8-byte big-endian seq frame, and its inverse (DataLoss unless exactly 8 bytes).
std::string encodeSeqFrame(uint64_t seq);
Result<uint64_t> decodeSeqFrame(std::string_view frame);

// Turbine's own messages.
std::string encodeKvEventPayload(const KvEventMessage& msg);
Result<KvEventMessage> decodeKvEventPayload(std::string_view payload);
EventFrames encodeKvEventFrames(const KvEventMessage& msg, std::string topic = "kv");

// One decoded vLLM event, with its extra fields.
struct VllmEvent {
  KvEvent event;
  std::vector<int32_t> token_ids;  // BlockStored only
  int32_t block_size = 0;          // BlockStored only
  std::optional<int64_t> lora_id;  // BlockStored only
  std::string medium;              // as sent ("" when absent)
};

struct VllmEventBatch {
  double ts = 0;
  std::vector<VllmEvent> events;
  std::optional<int64_t> data_parallel_rank;
};

Result<VllmEventBatch> decodeVllmEventBatch(std::string_view payload);
// A vLLM batch as Turbine's message for `worker` (seq from the frame).
Result<KvEventMessage> decodeVllmFrames(const std::vector<std::string>& frames, WorkerId worker);

}  // namespace turbine::kv
