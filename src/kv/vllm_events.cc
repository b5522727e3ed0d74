#include "kv/vllm_events.h"

#include "common/prefetch.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>

namespace turbine::kv {

namespace {

Status bad(const std::string& what) { return dataLoss("malformed KV event payload: " + what); }

// A reader of the MessagePack subset a KVEventBatch uses, straight from the bytes (no object
// tree: a batch of 32 blocks carries 512 token ids). Every read checks the bytes left; a
// container's element count is checked against them before anything is reserved.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  size_t left() const { return static_cast<size_t>(end_ - p_); }
  bool peekNil() const { return p_ < end_ && *p_ == 0xc0; }
  bool peekBin() const { return p_ < end_ && (*p_ == 0xc4 || *p_ == 0xc5 || *p_ == 0xc6); }
  bool peekStr() const { return p_ < end_ && ((*p_ & 0xe0) == 0xa0 || (*p_ >= 0xd9 && *p_ <= 0xdb)); }
  bool peekFloat() const { return p_ < end_ && (*p_ == 0xca || *p_ == 0xcb); }

  Result<uint32_t> array(const char* field) {
    if (p_ >= end_) return truncated(field);
    const uint8_t c = *p_;
    uint32_t n = 0;
    if ((c & 0xf0) == 0x90) {
      ++p_;
      n = c & 0x0f;
    } else if (c == 0xdc || c == 0xdd) {
      ++p_;
      TURBINE_ASSIGN_OR_RETURN(uint64_t v, big(c == 0xdc ? 2 : 4, field));
      n = static_cast<uint32_t>(v);
    } else {
      return bad(std::string(field) + " is not an array");
    }
    if (n > left()) return truncated(field);  // every element takes a byte at least
    return n;
  }

  // Any integer, as its 64-bit two's complement; false (nothing read) when the next value is not
  // a whole integer. The token loop's path: no Status per value.
  bool integer(uint64_t& v) {
    if (p_ >= end_) return false;
    const uint8_t c = *p_;
    if (c <= 0x7f) {
      v = c;
      ++p_;
      return true;
    }
    if (c >= 0xe0) {
      v = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(c)));
      ++p_;
      return true;
    }
    if (c < 0xcc || c > 0xd3) return false;
    const size_t n = size_t{1} << ((c - 0xcc) & 3);  // 1, 2, 4, 8 bytes
    if (n + 1 > left()) return false;
    const uint8_t* q = p_ + 1;
    uint64_t x;
    switch (n) {
      case 1: x = q[0]; break;
      case 2: { uint16_t t; std::memcpy(&t, q, 2); x = __builtin_bswap16(t); break; }
      case 4: { uint32_t t; std::memcpy(&t, q, 4); x = __builtin_bswap32(t); break; }
      default: { uint64_t t; std::memcpy(&t, q, 8); x = __builtin_bswap64(t); break; }
    }
    if (c >= 0xd0 && n < 8 && (x >> (8 * n - 1)) != 0) x |= ~uint64_t{0} << (8 * n);  // sign-extend
    p_ += n + 1;
    v = x;
    return true;
  }

  Result<uint64_t> integer(const char* field) {
    uint64_t v = 0;
    if (integer(v)) return v;
    if (p_ >= end_ || (*p_ >= 0xcc && *p_ <= 0xd3)) return truncated(field);
    return bad(std::string(field) + " is not an integer");
  }

  Result<double> number(const char* field) {
    if (p_ < end_ && (*p_ == 0xca || *p_ == 0xcb)) {
      const bool f64 = *p_++ == 0xcb;
      TURBINE_ASSIGN_OR_RETURN(uint64_t bits, big(f64 ? 8 : 4, field));
      if (f64) {
        double d;
        std::memcpy(&d, &bits, 8);
        return d;
      }
      const auto b32 = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &b32, 4);
      return static_cast<double>(f);
    }
    TURBINE_ASSIGN_OR_RETURN(uint64_t v, integer(field));
    return static_cast<double>(static_cast<int64_t>(v));
  }

  // A str's or bin's bytes.
  Result<std::string_view> bytes(const char* field) {
    if (p_ >= end_) return truncated(field);
    const uint8_t c = *p_;
    uint64_t n = 0;
    if ((c & 0xe0) == 0xa0) {  // fixstr
      ++p_;
      n = c & 0x1f;
    } else {  // str 8/16/32, bin 8/16/32: a big-endian length of 1, 2 or 4 bytes
      const int width = (c == 0xd9 || c == 0xc4) ? 1 : (c == 0xda || c == 0xc5) ? 2 : (c == 0xdb || c == 0xc6) ? 4 : 0;
      if (width == 0) return bad(std::string(field) + " is not a string or bytes");
      ++p_;
      TURBINE_ASSIGN_OR_RETURN(n, big(width, field));
    }
    if (n > left()) return truncated(field);
    std::string_view out(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return out;
  }

  // Skips one value of any type (newer vLLM fields), nested up to a depth.
  Status skip(const char* field, int depth = 0) {
    if (depth > 32) return bad(std::string(field) + " nests too deep");
    if (p_ >= end_) return truncated(field);
    const uint8_t c = *p_;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return ++p_, Status::ok();
    if ((c >= 0xcc && c <= 0xd3)) return integer(field).status();
    if (c == 0xca || c == 0xcb) return number(field).status();
    if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb) || (c >= 0xc4 && c <= 0xc6)) return bytes(field).status();
    uint64_t elements = 0;
    if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd) {
      TURBINE_ASSIGN_OR_RETURN(elements, array(field));
    } else if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf) {
      ++p_;
      if ((c & 0xf0) == 0x80) {
        elements = c & 0x0f;
      } else {
        TURBINE_ASSIGN_OR_RETURN(elements, big(c == 0xde ? 2 : 4, field));
      }
      elements *= 2;
    } else if (c >= 0xd4 && c <= 0xd8) {  // fixext 1..16
      ++p_;
      return advance(1 + (size_t{1} << (c - 0xd4)), field);
    } else if (c >= 0xc7 && c <= 0xc9) {  // ext 8/16/32
      ++p_;
      TURBINE_ASSIGN_OR_RETURN(uint64_t n, big(c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4, field));
      return advance(1 + n, field);
    } else {
      return bad(std::string(field) + " has an unknown MessagePack type");
    }
    for (uint64_t i = 0; i < elements; ++i) TURBINE_RETURN_IF_ERROR(skip(field, depth + 1));
    return Status::ok();
  }

  void skipNil() { ++p_; }

 private:
  static Status truncated(const char* field) { return bad(std::string(field) + " is truncated"); }
  Status advance(uint64_t n, const char* field) {
    if (n > left()) return truncated(field);
    p_ += n;
    return Status::ok();
  }
  Result<uint64_t> big(int n, const char* field) {
    if (static_cast<size_t>(n) > left()) return truncated(field);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | *p_++;
    return v;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

// vLLM block hash: int, or bytes folded to 64 bits.
Result<BlockHash> hash(Reader& r, const char* field) {
  if (r.peekBin() || r.peekStr()) {
    TURBINE_ASSIGN_OR_RETURN(std::string_view b, r.bytes(field));
    return XXH3_64bits(b.data(), b.size());
  }
  return r.integer(field);
}

Result<std::vector<BlockHash>> hashList(Reader& r, const char* field) {
  TURBINE_ASSIGN_OR_RETURN(uint32_t n, r.array(field));
  std::vector<BlockHash> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    TURBINE_ASSIGN_OR_RETURN(out[i], hash(r, field));
  }
  return out;
}

// An integer field that may be nil: nullopt then.
Result<std::optional<uint64_t>> optionalInteger(Reader& r, const char* field) {
  if (r.peekNil()) {
    r.skipNil();
    return std::optional<uint64_t>();
  }
  TURBINE_ASSIGN_OR_RETURN(uint64_t v, r.integer(field));
  return std::optional<uint64_t>(v);
}

// A string field that may be nil or absent: "" then.
Result<std::string> optionalString(Reader& r, const char* field) {
  if (r.peekNil()) {
    r.skipNil();
    return std::string();
  }
  if (!r.peekStr()) return bad(std::string(field) + " is not a string");
  TURBINE_ASSIGN_OR_RETURN(std::string_view s, r.bytes(field));
  return std::string(s);
}

Tier mediumTier(const std::string& m) {
  if (m == "CPU" || m == "cpu") return Tier::kHost;
  if (m == "DISK" || m == "disk") return Tier::kDisk;
  return Tier::kDevice;
}

Result<VllmEvent> vllmEvent(Reader& r) {
  if (r.left() == 0) return bad("event is truncated");
  Result<uint32_t> fields = r.array("event");
  if (!fields || *fields == 0) return bad("event is not a tagged array");
  const uint32_t n = *fields;
  if (!r.peekStr()) return bad("event tag is not a string");
  TURBINE_ASSIGN_OR_RETURN(std::string_view tag, r.bytes("event tag"));
  VllmEvent e;
  uint32_t read = 1;
  // The optional medium field at index `at` (its tier: device when absent).
  auto medium = [&](uint32_t at, const char* field) -> Result<Tier> {
    if (n > at) {
      TURBINE_ASSIGN_OR_RETURN(e.medium, optionalString(r, field));
      read = at + 1;
    }
    return mediumTier(e.medium);
  };
  if (tag == "BlockStored") {
    if (n < 5) return bad("BlockStored has " + std::to_string(n) + " fields, expected >= 5");
    BlockStored s;
    TURBINE_ASSIGN_OR_RETURN(s.block_hashes, hashList(r, "BlockStored.block_hashes"));
    if (r.peekNil()) {
      r.skipNil();
    } else {
      TURBINE_ASSIGN_OR_RETURN(auto p, hash(r, "BlockStored.parent_block_hash"));
      s.parent_hash = p;
    }
    TURBINE_ASSIGN_OR_RETURN(uint32_t tokens, r.array("BlockStored.token_ids"));
    e.token_ids.resize(tokens);
    for (uint32_t i = 0; i < tokens; ++i) {
      uint64_t t = 0;
      if (!r.integer(t)) return r.integer("BlockStored.token_ids").status();
      e.token_ids[i] = static_cast<int32_t>(t);
    }
    TURBINE_ASSIGN_OR_RETURN(uint64_t bs, r.integer("BlockStored.block_size"));
    e.block_size = static_cast<int32_t>(bs);
    read = 5;
    if (n > 5) {
      TURBINE_ASSIGN_OR_RETURN(auto lora, optionalInteger(r, "BlockStored.lora_id"));
      if (lora) e.lora_id = static_cast<int64_t>(*lora);
      read = 6;
    }
    TURBINE_ASSIGN_OR_RETURN(s.tier, medium(6, "BlockStored.medium"));
    e.event = std::move(s);
  } else if (tag == "BlockRemoved") {
    if (n < 2) return bad("BlockRemoved has no block_hashes");
    BlockRemoved rm;
    TURBINE_ASSIGN_OR_RETURN(rm.block_hashes, hashList(r, "BlockRemoved.block_hashes"));
    read = 2;
    TURBINE_ASSIGN_OR_RETURN(rm.tier, medium(2, "BlockRemoved.medium"));
    e.event = std::move(rm);
  } else if (tag == "AllBlocksCleared") {
    e.event = AllCleared{};
  } else {
    return bad("unknown event type '" + std::string(tag) + "'");
  }
  for (; read < n; ++read) TURBINE_RETURN_IF_ERROR(r.skip("event field"));  // later vLLM fields
  return e;
}

}  // namespace

Result<VllmEventBatch> decodeVllmEventBatch(std::string_view payload) {
  Reader r(payload);
  Result<uint32_t> fields = r.array("KVEventBatch");
  if (!fields || *fields < 2) return bad("KVEventBatch is not an array [ts, events, ...]");
  VllmEventBatch b;
  if (!r.peekFloat()) {
    Result<uint64_t> ts = r.integer("KVEventBatch.ts");
    if (!ts) return bad("KVEventBatch.ts is not a number");
    b.ts = static_cast<double>(*ts);
  } else {
    TURBINE_ASSIGN_OR_RETURN(b.ts, r.number("KVEventBatch.ts"));
  }
  TURBINE_ASSIGN_OR_RETURN(uint32_t events, r.array("KVEventBatch.events"));
  b.events.reserve(events);
  for (uint32_t i = 0; i < events; ++i) {
    TURBINE_ASSIGN_OR_RETURN(auto e, vllmEvent(r));
    b.events.push_back(std::move(e));
  }
  if (*fields > 2) {
    TURBINE_ASSIGN_OR_RETURN(auto rank, optionalInteger(r, "KVEventBatch.data_parallel_rank"));
    if (rank) b.data_parallel_rank = static_cast<int64_t>(*rank);
  }
  for (uint32_t i = 3; i < *fields; ++i) TURBINE_RETURN_IF_ERROR(r.skip("KVEventBatch field"));
  return b;
}

VllmBlockTranslator::VllmBlockTranslator(BlockHash root, int32_t block_size)
    : root_(root), block_size_(block_size > 0 ? block_size : 1) {}

uint64_t VllmBlockTranslator::part(BlockHash vllm_hash, size_t j) {
  if (j == 0) return vllm_hash;
  uint64_t x = vllm_hash ^ (j * 0x9E3779B97F4A7C15ull);  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

namespace {
size_t home(uint64_t key, size_t mask) { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask; }
}  // namespace

VllmBlockTranslator::Slot* VllmBlockTranslator::find(uint64_t key) {
  if (slots_.empty()) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t i = home(key, mask);; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.refs == 0) return nullptr;
    if (s.key == key) return &s;
  }
}

VllmBlockTranslator::Slot& VllmBlockTranslator::insert(uint64_t key) {
  if ((used_ + 1) * 10 > slots_.size() * 7) grow();
  const size_t mask = slots_.size() - 1;
  for (size_t i = home(key, mask);; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.refs == 0) {
      s.key = key;
      ++used_;
      return s;
    }
    if (s.key == key) return s;
  }
}

// Backward-shift deletion: later slots of the probe run move into the hole when their home
// allows, so lookups never need tombstones.
void VllmBlockTranslator::erase(Slot* slot) {
  const size_t mask = slots_.size() - 1;
  size_t hole = static_cast<size_t>(slot - slots_.data());
  for (size_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.refs == 0) break;
    const size_t h = home(s.key, mask);
    // s may fill the hole when its home is not in (hole, i] (cyclically).
    if (((i - h) & mask) >= ((i - hole) & mask)) {
      slots_[hole] = s;
      hole = i;
    }
  }
  slots_[hole] = Slot{};
  --used_;
}

// The slots a batch's blocks will probe, requested before any is read: their cache misses
// overlap instead of coming one after the other (the tables of a fleet's workers do not fit in
// cache). `expect_used`: the table's fill after the batch, as insert() would grow it.
void VllmBlockTranslator::prefetch(const std::vector<BlockHash>& vllm_hashes, size_t k, size_t expect_used) {
  if (slots_.empty() || (expect_used + 1) * 10 > slots_.size() * 7) return;  // it will grow first
  const size_t mask = slots_.size() - 1;
  for (BlockHash h : vllm_hashes) {
    for (size_t j = 0; j < k; ++j) {
      // A 24-byte slot may straddle two lines, and a probe run goes on into the next one.
      const char* slot = reinterpret_cast<const char*>(&slots_[home(part(h, j), mask)]);
      prefetchL1(slot);
      prefetchL1(slot + 64);
    }
  }
}

size_t VllmBlockTranslator::memoryBytes() const {
  // A node of the page map: the pair, the next pointer and the cached hash (libstdc++).
  constexpr size_t kNode = sizeof(std::pair<const BlockHash, Page>) + 2 * sizeof(void*);
  size_t bytes = slots_.capacity() * sizeof(Slot) + pages_.bucket_count() * sizeof(void*) + pages_.size() * kNode;
  for (const auto& [h, page] : pages_) bytes += page.tokens.capacity() * sizeof(int32_t);
  return bytes;
}

void VllmBlockTranslator::grow() {
  std::vector<Slot, HugePageAllocator<Slot>> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  used_ = 0;
  for (const Slot& s : old) {
    if (s.refs == 0) continue;
    Slot& n = insert(s.key);
    n.block = s.block;
    n.refs = s.refs;
  }
}

void VllmBlockTranslator::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  used_ = 0;
  blocks_ = 0;
  pages_.clear();
}

KvEventMessage VllmBlockTranslator::translate(const VllmEventBatch& batch, WorkerId worker, uint64_t seq) {
  KvEventMessage out{worker, seq, {}};
  for (const VllmEvent& e : batch.events) {
    if (const auto* s = std::get_if<BlockStored>(&e.event)) {
      store(e, *s, out);
    } else if (const auto* r = std::get_if<BlockRemoved>(&e.event)) {
      remove(*r, out);
    } else {
      clear();
      out.events.emplace_back(AllCleared{});
    }
  }
  return out;
}

void VllmBlockTranslator::storePages(const VllmEvent& e, const BlockStored& s, KvEventMessage& out) {
  const size_t n = s.block_hashes.size();
  const auto p = static_cast<size_t>(e.block_size);
  const auto bs = static_cast<size_t>(block_size_);
  std::optional<BlockHash> parent = s.parent_hash;
  for (size_t i = 0; i < n; ++i) {
    const BlockHash h = s.block_hashes[i];
    if (auto it = pages_.find(h); it != pages_.end()) {  // another tier: the same tokens
      ++it->second.refs;
      if (it->second.completes) {
        out.events.emplace_back(BlockStored{{it->second.tail},
                                            it->second.before == root_ ? std::nullopt : std::optional(it->second.before),
                                            s.tier});
      }
      ++stats_.blocks_stored;
      parent = h;
      continue;
    }
    Page page;
    page.tokens.assign(e.token_ids.begin() + static_cast<std::ptrdiff_t>(i * p),
                       e.token_ids.begin() + static_cast<std::ptrdiff_t>((i + 1) * p));
    page.tail = root_;
    if (parent) {
      auto pit = pages_.find(*parent);
      if (pit == pages_.end()) {  // unknown (or not a page): this page and the rest of the event
        stats_.blocks_dropped += n - i;
        return;
      }
      page.has_parent = true;
      page.parent = *parent;
      page.tail = pit->second.tail;
      page.pending = pit->second.pending;
    }
    if (page.pending + p >= bs) {
      // This page completes a block: the chain's last `pending` tokens, read back through the
      // parents, then the first bs - pending of this page's.
      std::vector<int32_t> block(bs);
      size_t need = page.pending;
      const Page* cur = page.has_parent ? &pages_.find(page.parent)->second : nullptr;
      while (need > 0 && cur != nullptr) {
        const size_t k = std::min(need, cur->tokens.size());
        std::copy(cur->tokens.end() - static_cast<std::ptrdiff_t>(k), cur->tokens.end(),
                  block.begin() + static_cast<std::ptrdiff_t>(need - k));
        need -= k;
        if (need > 0) {
          auto up = cur->has_parent ? pages_.find(cur->parent) : pages_.end();
          cur = up == pages_.end() ? nullptr : &up->second;
        }
      }
      if (need > 0) {  // an ancestor went first (out of leaf order): the chain cannot be read
        stats_.blocks_dropped += n - i;
        return;
      }
      const size_t take = bs - page.pending;
      std::copy(page.tokens.begin(), page.tokens.begin() + static_cast<std::ptrdiff_t>(take),
                block.begin() + static_cast<std::ptrdiff_t>(page.pending));
      page.before = page.tail;
      page.tail = hashBlock(page.before, block);
      page.completes = true;
      page.pending = static_cast<uint32_t>(p - take);
      out.events.emplace_back(BlockStored{{page.tail},
                                          page.before == root_ ? std::nullopt : std::optional(page.before), s.tier});
    } else {
      page.pending += static_cast<uint32_t>(p);
    }
    page.refs = 1;
    pages_.emplace(h, std::move(page));
    ++stats_.blocks_stored;
    parent = h;
  }
}

void VllmBlockTranslator::store(const VllmEvent& e, const BlockStored& s, KvEventMessage& out) {
  const size_t n = s.block_hashes.size();
  if (e.block_size > 0 && e.block_size < block_size_ && !e.lora_id &&
      e.token_ids.size() == n * static_cast<size_t>(e.block_size)) {
    storePages(e, s, out);
    return;
  }
  const bool sizes_fit = e.block_size > 0 && e.block_size % block_size_ == 0 &&
                         e.token_ids.size() == n * static_cast<size_t>(e.block_size);
  const size_t k = sizes_fit ? static_cast<size_t>(e.block_size / block_size_) : 0;
  // One engine has one block size; were it to change, the parts of the old blocks would no
  // longer be found: start over.
  if (sizes_fit && parts_ != static_cast<int32_t>(k)) {
    if (parts_ != 0) clear();
    parts_ = static_cast<int32_t>(k);
  }
  BlockHash parent = root_;
  bool known_parent = true;
  if (s.parent_hash && sizes_fit) {
    const Slot* p = find(part(*s.parent_hash, k - 1));
    known_parent = p != nullptr;
    if (known_parent) parent = p->block;
  }
  if (!sizes_fit || !known_parent || e.lora_id) {
    stats_.blocks_dropped += n;
    return;
  }
  BlockStored t{{}, s.parent_hash ? std::optional<BlockHash>(parent) : std::nullopt, s.tier};
  t.block_hashes.resize(n * k);
  prefetch(s.block_hashes, k, n * k + used_);
  const std::span<const int32_t> tokens(e.token_ids);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < k; ++j) {
      Slot& slot = insert(part(s.block_hashes[i], j));
      // A hash already held (another tier) names the same tokens: its blocks are the same.
      if (slot.refs++ == 0) {
        slot.block = hashBlock(parent, tokens.subspan((i * k + j) * static_cast<size_t>(block_size_),
                                                      static_cast<size_t>(block_size_)));
        if (j == 0) ++blocks_;
      }
      parent = slot.block;
      t.block_hashes[i * k + j] = parent;
    }
  }
  stats_.blocks_stored += n;
  out.events.emplace_back(std::move(t));
}

void VllmBlockTranslator::remove(const BlockRemoved& r, KvEventMessage& out) {
  BlockRemoved t{{}, r.tier};
  const size_t k = static_cast<size_t>(std::max(parts_, 1));
  t.block_hashes.reserve(r.block_hashes.size() * k);
  prefetch(r.block_hashes, k, used_);
  for (BlockHash h : r.block_hashes) {
    if (find(part(h, 0)) == nullptr) {
      if (auto it = pages_.find(h); it != pages_.end()) {
        if (it->second.completes) t.block_hashes.push_back(it->second.tail);
        if (--it->second.refs == 0) pages_.erase(it);
        continue;
      }
      ++stats_.unknown_removed;
      continue;
    }
    for (size_t j = 0; j < k; ++j) {
      Slot* slot = find(part(h, j));
      if (slot == nullptr) continue;  // not reached: the parts of a block come and go together
      t.block_hashes.push_back(slot->block);
      if (--slot->refs == 0) {
        erase(slot);
        if (j == 0) --blocks_;
      }
    }
  }
  if (!t.block_hashes.empty()) out.events.emplace_back(std::move(t));
}

}  // namespace turbine::kv
