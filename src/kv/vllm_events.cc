#define MSGPACK_NO_BOOST 1
#include "kv/vllm_events.h"

#include <msgpack.hpp>
#include <xxhash.h>

namespace turbine::kv {

namespace {

using Obj = msgpack::object;

Status bad(const std::string& what) { return dataLoss("malformed KV event payload: " + what); }

Result<uint64_t> asU64(const Obj& o, const char* field) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) return o.via.u64;
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<uint64_t>(o.via.i64);
  return bad(std::string(field) + " is not an integer");
}

// vLLM block hash: int, or bytes folded to 64 bits.
Result<BlockHash> asHash(const Obj& o, const char* field) {
  if (o.type == msgpack::type::BIN) return XXH3_64bits(o.via.bin.ptr, o.via.bin.size);
  return asU64(o, field);
}

Result<std::vector<BlockHash>> hashList(const Obj& o, const char* field) {
  if (o.type != msgpack::type::ARRAY) return bad(std::string(field) + " is not an array");
  std::vector<BlockHash> out;
  out.reserve(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    TURBINE_ASSIGN_OR_RETURN(auto h, asHash(o.via.array.ptr[i], field));
    out.push_back(h);
  }
  return out;
}

std::string asString(const Obj& o) {
  if (o.type == msgpack::type::STR) return std::string(o.via.str.ptr, o.via.str.size);
  return {};
}

Tier mediumTier(const std::string& m) {
  if (m == "CPU" || m == "cpu") return Tier::kHost;
  if (m == "DISK" || m == "disk") return Tier::kDisk;
  return Tier::kDevice;
}

Result<VllmEvent> vllmEvent(const Obj& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size == 0) return bad("event is not a tagged array");
  const Obj* f = o.via.array.ptr;
  const uint32_t n = o.via.array.size;
  const std::string tag = asString(f[0]);
  VllmEvent e;
  if (tag == "BlockStored") {
    if (n < 5) return bad("BlockStored has " + std::to_string(n) + " fields, expected >= 5");
    BlockStored s;
    TURBINE_ASSIGN_OR_RETURN(s.block_hashes, hashList(f[1], "BlockStored.block_hashes"));
    if (f[2].type != msgpack::type::NIL) {
      TURBINE_ASSIGN_OR_RETURN(auto p, asHash(f[2], "BlockStored.parent_block_hash"));
      s.parent_hash = p;
    }
    if (f[3].type != msgpack::type::ARRAY) return bad("BlockStored.token_ids is not an array");
    for (uint32_t i = 0; i < f[3].via.array.size; ++i) {
      TURBINE_ASSIGN_OR_RETURN(auto t, asU64(f[3].via.array.ptr[i], "BlockStored.token_ids"));
      e.token_ids.push_back(static_cast<int32_t>(t));
    }
    TURBINE_ASSIGN_OR_RETURN(auto bs, asU64(f[4], "BlockStored.block_size"));
    e.block_size = static_cast<int32_t>(bs);
    if (n > 5 && f[5].type != msgpack::type::NIL) {
      TURBINE_ASSIGN_OR_RETURN(auto lora, asU64(f[5], "BlockStored.lora_id"));
      e.lora_id = static_cast<int64_t>(lora);
    }
    if (n > 6) e.medium = asString(f[6]);
    s.tier = mediumTier(e.medium);
    e.event = std::move(s);
  } else if (tag == "BlockRemoved") {
    if (n < 2) return bad("BlockRemoved has no block_hashes");
    BlockRemoved r;
    TURBINE_ASSIGN_OR_RETURN(r.block_hashes, hashList(f[1], "BlockRemoved.block_hashes"));
    if (n > 2) e.medium = asString(f[2]);
    r.tier = mediumTier(e.medium);
    e.event = std::move(r);
  } else if (tag == "AllBlocksCleared") {
    e.event = AllCleared{};
  } else {
    return bad("unknown event type '" + tag + "'");
  }
  return e;
}

const Obj* mapField(const Obj& m, std::string_view key) {
  for (uint32_t i = 0; i < m.via.map.size; ++i) {
    const auto& kv = m.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

Result<KvEvent> turbineEvent(const Obj& o) {
  if (o.type != msgpack::type::MAP) return bad("event is not a map");
  const Obj* type = mapField(o, "type");
  const std::string t = type ? asString(*type) : "";
  if (t == "cleared") return KvEvent{AllCleared{}};
  const Obj* hashes = mapField(o, "block_hashes");
  if (!hashes) return bad("event '" + t + "' has no block_hashes");
  TURBINE_ASSIGN_OR_RETURN(auto hs, hashList(*hashes, "block_hashes"));
  Tier tier = Tier::kDevice;
  if (const Obj* tr = mapField(o, "tier")) {
    auto parsed = parseTier(asString(*tr));
    if (!parsed) return bad(parsed.status().message());
    tier = *parsed;
  }
  if (t == "removed") return KvEvent{BlockRemoved{std::move(hs), tier}};
  if (t != "stored") return bad("unknown event type '" + t + "'");
  BlockStored s{std::move(hs), std::nullopt, tier};
  if (const Obj* p = mapField(o, "parent_hash"); p && p->type != msgpack::type::NIL) {
    TURBINE_ASSIGN_OR_RETURN(auto ph, asU64(*p, "parent_hash"));
    s.parent_hash = ph;
  }
  return KvEvent{std::move(s)};
}

template <typename Fn>
auto withUnpacked(std::string_view payload, Fn fn) -> decltype(fn(std::declval<const Obj&>())) {
  try {
    msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    return fn(h.get());
  } catch (const std::exception& e) {
    return bad(std::string("MessagePack: ") + e.what());
  }
}

}  // namespace

std::string encodeSeqFrame(uint64_t seq) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((seq >> (56 - 8 * i)) & 0xFF);
  return out;
}

Result<uint64_t> decodeSeqFrame(std::string_view frame) {
  if (frame.size() != 8) return dataLoss("KV event seq frame has " + std::to_string(frame.size()) + " bytes, expected 8");
  uint64_t v = 0;
  for (unsigned char c : frame) v = v << 8 | c;
  return v;
}

std::string encodeKvEventPayload(const KvEventMessage& msg) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(3);
  pk.pack(std::string("worker_id")).pack(msg.worker_id);
  pk.pack(std::string("seq")).pack(msg.seq);
  pk.pack(std::string("events")).pack_array(static_cast<uint32_t>(msg.events.size()));
  for (const auto& e : msg.events) {
    if (const auto* s = std::get_if<BlockStored>(&e)) {
      pk.pack_map(4);
      pk.pack(std::string("type")).pack(std::string("stored"));
      pk.pack(std::string("block_hashes")).pack(s->block_hashes);
      pk.pack(std::string("parent_hash"));
      if (s->parent_hash) pk.pack(*s->parent_hash); else pk.pack_nil();
      pk.pack(std::string("tier")).pack(std::string(tierName(s->tier)));
    } else if (const auto* r = std::get_if<BlockRemoved>(&e)) {
      pk.pack_map(3);
      pk.pack(std::string("type")).pack(std::string("removed"));
      pk.pack(std::string("block_hashes")).pack(r->block_hashes);
      pk.pack(std::string("tier")).pack(std::string(tierName(r->tier)));
    } else {
      pk.pack_map(1);
      pk.pack(std::string("type")).pack(std::string("cleared"));
    }
  }
  return std::string(buf.data(), buf.size());
}

Result<KvEventMessage> decodeKvEventPayload(std::string_view payload) {
  return withUnpacked(payload, [](const Obj& root) -> Result<KvEventMessage> {
    if (root.type != msgpack::type::MAP) return bad("payload is not a map");
    KvEventMessage msg;
    const Obj* w = mapField(root, "worker_id");
    const Obj* s = mapField(root, "seq");
    const Obj* ev = mapField(root, "events");
    if (!w || !s || !ev) return bad("payload lacks worker_id, seq or events");
    TURBINE_ASSIGN_OR_RETURN(msg.worker_id, asU64(*w, "worker_id"));
    TURBINE_ASSIGN_OR_RETURN(msg.seq, asU64(*s, "seq"));
    if (ev->type != msgpack::type::ARRAY) return bad("events is not an array");
    for (uint32_t i = 0; i < ev->via.array.size; ++i) {
      TURBINE_ASSIGN_OR_RETURN(auto e, turbineEvent(ev->via.array.ptr[i]));
      msg.events.push_back(std::move(e));
    }
    return msg;
  });
}

EventFrames encodeKvEventFrames(const KvEventMessage& msg, std::string topic) {
  return EventFrames{std::move(topic), msg.seq, encodeKvEventPayload(msg)};
}

Result<VllmEventBatch> decodeVllmEventBatch(std::string_view payload) {
  return withUnpacked(payload, [](const Obj& root) -> Result<VllmEventBatch> {
    if (root.type != msgpack::type::ARRAY || root.via.array.size < 2)
      return bad("KVEventBatch is not an array [ts, events, ...]");
    const Obj* f = root.via.array.ptr;
    VllmEventBatch b;
    if (f[0].type == msgpack::type::FLOAT64 || f[0].type == msgpack::type::FLOAT32) b.ts = f[0].via.f64;
    else if (f[0].type == msgpack::type::POSITIVE_INTEGER) b.ts = static_cast<double>(f[0].via.u64);
    else return bad("KVEventBatch.ts is not a number");
    if (f[1].type != msgpack::type::ARRAY) return bad("KVEventBatch.events is not an array");
    for (uint32_t i = 0; i < f[1].via.array.size; ++i) {
      TURBINE_ASSIGN_OR_RETURN(auto e, vllmEvent(f[1].via.array.ptr[i]));
      b.events.push_back(std::move(e));
    }
    if (root.via.array.size > 2 && f[2].type != msgpack::type::NIL) {
      TURBINE_ASSIGN_OR_RETURN(auto r, asU64(f[2], "KVEventBatch.data_parallel_rank"));
      b.data_parallel_rank = static_cast<int64_t>(r);
    }
    return b;
  });
}

Result<KvEventMessage> decodeVllmFrames(const std::vector<std::string>& frames, WorkerId worker) {
  if (frames.size() != 3) return dataLoss("KV event message has " + std::to_string(frames.size()) + " frames, expected 3 [topic, seq, payload]");
  TURBINE_ASSIGN_OR_RETURN(uint64_t seq, decodeSeqFrame(frames[1]));
  TURBINE_ASSIGN_OR_RETURN(auto batch, decodeVllmEventBatch(frames[2]));
  KvEventMessage msg{worker, seq, {}};
  for (auto& e : batch.events) msg.events.push_back(std::move(e.event));
  return msg;
}

}  // namespace turbine::kv
