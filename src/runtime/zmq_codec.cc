#include "runtime/zmq_codec.h"

#include <msgpack.hpp>

#include <exception>
#include <string>
#include <type_traits>

namespace turbine::runtime::zmq_codec {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void packStr(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void packHashes(Packer& pk, const std::vector<kv::BlockHash>& hashes) {
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (kv::BlockHash h : hashes) pk.pack_uint64(h);
}

void packEvent(Packer& pk, const kv::KvEvent& event) {
  if (const auto* s = std::get_if<kv::BlockStored>(&event)) {
    pk.pack_map(4);
    packStr(pk, "type"), packStr(pk, "stored");
    packStr(pk, "block_hashes"), packHashes(pk, s->block_hashes);
    packStr(pk, "parent_hash");
    if (s->parent_hash) pk.pack_uint64(*s->parent_hash); else pk.pack_nil();
    packStr(pk, "tier"), packStr(pk, kv::tierName(s->tier));
  } else if (const auto* r = std::get_if<kv::BlockRemoved>(&event)) {
    pk.pack_map(3);
    packStr(pk, "type"), packStr(pk, "removed");
    packStr(pk, "block_hashes"), packHashes(pk, r->block_hashes);
    packStr(pk, "tier"), packStr(pk, kv::tierName(r->tier));
  } else {
    pk.pack_map(1);
    packStr(pk, "type"), packStr(pk, "cleared");
  }
}

// --- decoding helpers over msgpack::object (no exceptions escape) ---

const msgpack::object* findKey(const msgpack::object& map, std::string_view key) {
  const msgpack::object_map& m = map.via.map;
  for (uint32_t i = 0; i < m.size; ++i) {
    const msgpack::object& k = m.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      return &m.ptr[i].val;
    }
  }
  return nullptr;
}

Status fieldError(std::string_view what, std::string_view field) {
  return dataLoss("event payload (" + std::string(what) + "): field '" + std::string(field) +
                  "' is missing or has the wrong type");
}

Status readUint(const msgpack::object& map, std::string_view what, std::string_view key,
                uint64_t* out, bool required = true) {
  const msgpack::object* v = findKey(map, key);
  if (!v) return required ? fieldError(what, key) : Status::ok();
  if (v->type != msgpack::type::POSITIVE_INTEGER) return fieldError(what, key);
  *out = v->via.u64;
  return Status::ok();
}

template <typename Int>
Status readInt(const msgpack::object& map, std::string_view what, std::string_view key, Int* out) {
  const msgpack::object* v = findKey(map, key);
  if (!v) return Status::ok();  // optional: keeps the default
  if (v->type == msgpack::type::POSITIVE_INTEGER) {
    *out = static_cast<Int>(v->via.u64);
  } else if (v->type == msgpack::type::NEGATIVE_INTEGER) {
    *out = static_cast<Int>(v->via.i64);
  } else {
    return fieldError(what, key);
  }
  return Status::ok();
}

Status readDouble(const msgpack::object& map, std::string_view what, std::string_view key, double* out) {
  const msgpack::object* v = findKey(map, key);
  if (!v) return Status::ok();
  switch (v->type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: *out = v->via.f64; return Status::ok();
    case msgpack::type::POSITIVE_INTEGER: *out = static_cast<double>(v->via.u64); return Status::ok();
    case msgpack::type::NEGATIVE_INTEGER: *out = static_cast<double>(v->via.i64); return Status::ok();
    default: return fieldError(what, key);
  }
}

Status readString(const msgpack::object& map, std::string_view what, std::string_view key,
                  std::string* out, bool required) {
  const msgpack::object* v = findKey(map, key);
  if (!v) return required ? fieldError(what, key) : Status::ok();
  if (v->type != msgpack::type::STR) return fieldError(what, key);
  out->assign(v->via.str.ptr, v->via.str.size);
  return Status::ok();
}

Status readHashes(const msgpack::object& map, std::vector<kv::BlockHash>* out) {
  const msgpack::object* v = findKey(map, "block_hashes");
  if (!v || v->type != msgpack::type::ARRAY) return fieldError("kv", "block_hashes");
  out->reserve(v->via.array.size);
  for (uint32_t i = 0; i < v->via.array.size; ++i) {
    const msgpack::object& h = v->via.array.ptr[i];
    if (h.type != msgpack::type::POSITIVE_INTEGER) return fieldError("kv", "block_hashes");
    out->push_back(h.via.u64);
  }
  return Status::ok();
}

Status readTier(const msgpack::object& map, kv::Tier* out) {
  std::string name = "device";
  TURBINE_RETURN_IF_ERROR(readString(map, "kv", "tier", &name, false));
  Result<kv::Tier> tier = kv::parseTier(name);
  if (!tier) return dataLoss("event payload (kv): " + tier.status().message());
  *out = *tier;
  return Status::ok();
}

Result<kv::KvEvent> decodeEvent(const msgpack::object& e) {
  if (e.type != msgpack::type::MAP) return fieldError("kv", "events[]");
  std::string type;
  TURBINE_RETURN_IF_ERROR(readString(e, "kv", "type", &type, true));
  if (type == "cleared") return kv::KvEvent(kv::AllCleared{});
  if (type == "removed") {
    kv::BlockRemoved r;
    TURBINE_RETURN_IF_ERROR(readHashes(e, &r.block_hashes));
    TURBINE_RETURN_IF_ERROR(readTier(e, &r.tier));
    return kv::KvEvent(std::move(r));
  }
  if (type != "stored") return dataLoss("event payload (kv): unknown event type '" + type + "'");
  kv::BlockStored s;
  TURBINE_RETURN_IF_ERROR(readHashes(e, &s.block_hashes));
  TURBINE_RETURN_IF_ERROR(readTier(e, &s.tier));
  const msgpack::object* parent = findKey(e, "parent_hash");
  if (parent && parent->type == msgpack::type::POSITIVE_INTEGER) {
    s.parent_hash = parent->via.u64;
  } else if (parent && parent->type != msgpack::type::NIL) {
    return fieldError("kv", "parent_hash");
  }
  return kv::KvEvent(std::move(s));
}

// Unpacks `bytes` into a map object kept alive by `handle`.
Status unpackMap(std::string_view bytes, std::string_view what, msgpack::object_handle* handle) {
  try {
    *handle = msgpack::unpack(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    return dataLoss("event payload (" + std::string(what) + "): not MessagePack: " + e.what());
  }
  if (handle->get().type != msgpack::type::MAP) {
    return dataLoss("event payload (" + std::string(what) + "): not a map");
  }
  return Status::ok();
}

}  // namespace

std::string encodeKvMessage(const kv::KvEventMessage& msg) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(3);
  packStr(pk, "worker_id"), pk.pack_uint64(msg.worker_id);
  packStr(pk, "seq"), pk.pack_uint64(msg.seq);
  packStr(pk, "events");
  pk.pack_array(static_cast<uint32_t>(msg.events.size()));
  for (const kv::KvEvent& e : msg.events) packEvent(pk, e);
  return std::string(buf.data(), buf.size());
}

Result<kv::KvEventMessage> decodeKvMessage(std::string_view bytes) {
  msgpack::object_handle handle;
  TURBINE_RETURN_IF_ERROR(unpackMap(bytes, "kv", &handle));
  const msgpack::object& map = handle.get();
  kv::KvEventMessage msg;
  TURBINE_RETURN_IF_ERROR(readUint(map, "kv", "worker_id", &msg.worker_id));
  TURBINE_RETURN_IF_ERROR(readUint(map, "kv", "seq", &msg.seq));
  const msgpack::object* events = findKey(map, "events");
  if (!events || events->type != msgpack::type::ARRAY) return fieldError("kv", "events");
  for (uint32_t i = 0; i < events->via.array.size; ++i) {
    Result<kv::KvEvent> e = decodeEvent(events->via.array.ptr[i]);
    if (!e) return e.status();
    msg.events.push_back(std::move(e).value());
  }
  return msg;
}

std::string encodeLoadMetrics(const kv::LoadMetrics& load) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(14);
  packStr(pk, "worker_id"), pk.pack_uint64(load.worker_id);
  packStr(pk, "role"), packStr(pk, load.role);
  packStr(pk, "running"), pk.pack_int32(load.running);
  packStr(pk, "waiting"), pk.pack_int32(load.waiting);
  packStr(pk, "kv_blocks_total"), pk.pack_int32(load.kv_blocks_total);
  packStr(pk, "kv_blocks_used"), pk.pack_int32(load.kv_blocks_used);
  packStr(pk, "kv_blocks_cached_free"), pk.pack_int32(load.kv_blocks_cached_free);
  packStr(pk, "kv_host_blocks_total"), pk.pack_int32(load.kv_host_blocks_total);
  packStr(pk, "kv_host_blocks_used"), pk.pack_int32(load.kv_host_blocks_used);
  packStr(pk, "kv_disk_blocks_total"), pk.pack_int32(load.kv_disk_blocks_total);
  packStr(pk, "kv_disk_blocks_used"), pk.pack_int32(load.kv_disk_blocks_used);
  packStr(pk, "tokens_per_s_prefill"), pk.pack_double(load.tokens_per_s_prefill);
  packStr(pk, "tokens_per_s_decode"), pk.pack_double(load.tokens_per_s_decode);
  packStr(pk, "ts_ms"), pk.pack_int64(load.ts_ms);
  return std::string(buf.data(), buf.size());
}

Result<kv::LoadMetrics> decodeLoadMetrics(std::string_view bytes) {
  msgpack::object_handle handle;
  TURBINE_RETURN_IF_ERROR(unpackMap(bytes, "load", &handle));
  const msgpack::object& m = handle.get();
  kv::LoadMetrics l;
  TURBINE_RETURN_IF_ERROR(readUint(m, "load", "worker_id", &l.worker_id));
  TURBINE_RETURN_IF_ERROR(readString(m, "load", "role", &l.role, false));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "running", &l.running));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "waiting", &l.waiting));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_blocks_total", &l.kv_blocks_total));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_blocks_used", &l.kv_blocks_used));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_blocks_cached_free", &l.kv_blocks_cached_free));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_host_blocks_total", &l.kv_host_blocks_total));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_host_blocks_used", &l.kv_host_blocks_used));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_disk_blocks_total", &l.kv_disk_blocks_total));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "kv_disk_blocks_used", &l.kv_disk_blocks_used));
  TURBINE_RETURN_IF_ERROR(readDouble(m, "load", "tokens_per_s_prefill", &l.tokens_per_s_prefill));
  TURBINE_RETURN_IF_ERROR(readDouble(m, "load", "tokens_per_s_decode", &l.tokens_per_s_decode));
  TURBINE_RETURN_IF_ERROR(readInt(m, "load", "ts_ms", &l.ts_ms));
  return l;
}

std::string encodePayload(const EventPayload& payload) {
  if (const auto* m = std::get_if<kv::KvEventMessage>(&payload)) return encodeKvMessage(*m);
  return encodeLoadMetrics(std::get<kv::LoadMetrics>(payload));
}

Result<EventPayload> decodePayload(Topic topic, std::string_view bytes) {
  if (topic == Topic::kKv) {
    Result<kv::KvEventMessage> m = decodeKvMessage(bytes);
    if (!m) return m.status();
    return EventPayload(std::move(m).value());
  }
  Result<kv::LoadMetrics> l = decodeLoadMetrics(bytes);
  if (!l) return l.status();
  return EventPayload(std::move(l).value());
}

std::string encodeSeq(uint64_t seq) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, seq >>= 8) out[i] = static_cast<char>(seq & 0xff);
  return out;
}

Result<uint64_t> decodeSeq(std::string_view bytes) {
  if (bytes.size() != 8) return dataLoss("event frame: seq must be 8 bytes, got " + std::to_string(bytes.size()));
  uint64_t seq = 0;
  for (char c : bytes) seq = (seq << 8) | static_cast<uint8_t>(c);
  return seq;
}

Result<Topic> parseTopic(std::string_view name) {
  if (name == "kv") return Topic::kKv;
  if (name == "load") return Topic::kLoad;
  return invalidArgument("event frame: unknown topic '" + std::string(name) + "'");
}

}  // namespace turbine::runtime::zmq_codec
