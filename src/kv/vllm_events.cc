#define MSGPACK_NO_BOOST 1
#include "kv/vllm_events.h"

#include <msgpack.hpp>
#include <xxhash.h>

#include <span>

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

VllmBlockTranslator::VllmBlockTranslator(BlockHash root, int32_t block_size)
    : root_(root), block_size_(block_size > 0 ? block_size : 1) {}

KvEventMessage VllmBlockTranslator::translate(const VllmEventBatch& batch, WorkerId worker, uint64_t seq) {
  KvEventMessage out{worker, seq, {}};
  for (const VllmEvent& e : batch.events) {
    if (const auto* s = std::get_if<BlockStored>(&e.event)) {
      store(e, *s, out);
    } else if (const auto* r = std::get_if<BlockRemoved>(&e.event)) {
      remove(*r, out);
    } else {
      map_.clear();
      out.events.emplace_back(AllCleared{});
    }
  }
  return out;
}

void VllmBlockTranslator::store(const VllmEvent& e, const BlockStored& s, KvEventMessage& out) {
  const size_t n = s.block_hashes.size();
  const bool sizes_fit = e.block_size > 0 && e.block_size % block_size_ == 0 &&
                         e.token_ids.size() == n * static_cast<size_t>(e.block_size);
  BlockHash parent = root_;
  bool known_parent = true;
  if (s.parent_hash) {
    auto it = map_.find(*s.parent_hash);
    known_parent = it != map_.end();
    if (known_parent) parent = it->second.blocks.back();
  }
  if (!sizes_fit || !known_parent || e.lora_id) {
    stats_.blocks_dropped += n;
    return;
  }
  const size_t k = static_cast<size_t>(e.block_size / block_size_);
  BlockStored t{{}, s.parent_hash ? std::optional<BlockHash>(parent) : std::nullopt, s.tier};
  t.block_hashes.reserve(n * k);
  const std::span<const int32_t> tokens(e.token_ids);
  for (size_t i = 0; i < n; ++i) {
    Mapped& m = map_[s.block_hashes[i]];
    if (m.refs++ == 0) {
      m.blocks.clear();
      for (size_t j = 0; j < k; ++j) {
        parent = hashBlock(parent, tokens.subspan((i * k + j) * block_size_, block_size_));
        m.blocks.push_back(parent);
      }
    }
    // A hash already held (another tier) names the same tokens: its blocks are the same.
    parent = m.blocks.back();
    t.block_hashes.insert(t.block_hashes.end(), m.blocks.begin(), m.blocks.end());
  }
  stats_.blocks_stored += n;
  out.events.emplace_back(std::move(t));
}

void VllmBlockTranslator::remove(const BlockRemoved& r, KvEventMessage& out) {
  BlockRemoved t{{}, r.tier};
  for (BlockHash h : r.block_hashes) {
    auto it = map_.find(h);
    if (it == map_.end()) {
      ++stats_.unknown_removed;
      continue;
    }
    t.block_hashes.insert(t.block_hashes.end(), it->second.blocks.begin(), it->second.blocks.end());
    if (--it->second.refs == 0) map_.erase(it);
  }
  if (!t.block_hashes.empty()) out.events.emplace_back(std::move(t));
}

}  // namespace turbine::kv
