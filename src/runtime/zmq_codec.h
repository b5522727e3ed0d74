// MessagePack encoding of the event plane's payloads (DESIGN.md §3.2, §3.3) and the frame
// layout of the ZeroMQ event plane.
//
// Frames of one published message: [topic ("kv" | "load"), seq (8 bytes, big-endian), payload].
// `seq` is the publisher's own counter per topic, consecutive from 0; replay asks by it.
//
// kv payload: a map {"worker_id": uint, "seq": uint, "events": [event...]}, each event a map
//   {"type": "stored", "block_hashes": [uint...], "parent_hash": uint | nil, "tier": "device"}
//   {"type": "removed", "block_hashes": [uint...], "tier": "device"}
//   {"type": "cleared"}
// load payload: a map with the fields of kv::LoadMetrics under their own names
//   (worker_id, role, running, waiting, kv_blocks_total, kv_blocks_used, kv_blocks_cached_free,
//   tokens_per_s_prefill, tokens_per_s_decode, ts_ms).
// Decoders accept keys in any order, ignore unknown keys ("tier" and "parent_hash" may be
// missing), and answer DataLoss naming the field on anything malformed; they never throw.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "kv/kv_events.h"
#include "kv/load_metrics.h"
#include "runtime/event_plane.h"

namespace turbine::runtime::zmq_codec {

std::string encodeKvMessage(const kv::KvEventMessage& msg);
Result<kv::KvEventMessage> decodeKvMessage(std::string_view bytes);

std::string encodeLoadMetrics(const kv::LoadMetrics& load);
Result<kv::LoadMetrics> decodeLoadMetrics(std::string_view bytes);

std::string encodePayload(const EventPayload& payload);
Result<EventPayload> decodePayload(Topic topic, std::string_view bytes);

// The 8-byte big-endian seq frame.
std::string encodeSeq(uint64_t seq);
// DataLoss unless exactly 8 bytes.
Result<uint64_t> decodeSeq(std::string_view bytes);
// "kv" -> kKv, "load" -> kLoad; InvalidArgument otherwise.
Result<Topic> parseTopic(std::string_view name);

}  // namespace turbine::runtime::zmq_codec
