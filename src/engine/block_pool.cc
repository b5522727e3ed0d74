#include "engine/block_pool.h"

#include <string>

namespace turbine::engine {

BlockPool::BlockPool(int32_t num_blocks, bool enable_caching)
    : caching_(enable_caching), blocks_(static_cast<size_t>(num_blocks)) {
  free_.reserve(blocks_.size());
  for (BlockId b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out 0 first
}

bool BlockPool::allocate(int32_t n, std::vector<BlockId>& out) {
  if (n <= 0) return true;
  if (n > numAvailable()) return false;
  for (int32_t i = 0; i < n; ++i) {
    if (free_.empty()) evictOne();
    const BlockId b = free_.back();
    free_.pop_back();
    blocks_[b].ref = 1;
    out.push_back(b);
  }
  return true;
}

void BlockPool::release(std::span<const BlockId> blocks) {
  for (BlockId b : blocks) {
    Meta& m = blocks_[b];
    if (--m.ref > 0) continue;
    if (m.has_hash) {
      m.tick = ++clock_;
      ++num_cached_free_;
      markEvictableIfLeaf(b);
    } else {
      free_.push_back(b);
    }
  }
}

std::optional<BlockId> BlockPool::lookup(kv::BlockHash hash) const {
  const auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::acquire(BlockId block) {
  Meta& m = blocks_[block];
  if (m.ref == 0) {
    --num_cached_free_;
    evictable_.erase({m.tick, block});
  }
  ++m.ref;
}

BlockId BlockPool::commit(BlockId block, kv::BlockHash hash, std::optional<kv::BlockHash> parent) {
  if (!caching_ || blocks_[block].has_hash) return block;
  const auto it = by_hash_.find(hash);
  if (it != by_hash_.end()) {
    const BlockId cached = it->second;
    if (cached == block) return block;
    acquire(cached);
    const BlockId mine[1] = {block};
    release(mine);
    return cached;
  }
  Meta& m = blocks_[block];
  m.has_hash = true;
  m.hash = hash;
  m.parent_hash = parent;
  by_hash_.emplace(hash, block);
  if (parent) {
    const auto p = by_hash_.find(*parent);
    if (p != by_hash_.end()) {
      Meta& pm = blocks_[p->second];
      m.parent = p->second;
      if (pm.num_children++ == 0 && pm.ref == 0) evictable_.erase({pm.tick, p->second});
    }
  }
  emitStored(hash, parent);
  return block;
}

void BlockPool::resetPrefixCache() {
  for (BlockId b = 0; b < numBlocks(); ++b) {
    Meta& m = blocks_[b];
    if (m.has_hash && m.ref == 0) free_.push_back(b);
    m.has_hash = false;
    m.parent = -1;
    m.num_children = 0;
  }
  by_hash_.clear();
  evictable_.clear();
  num_cached_free_ = 0;
  events_.emplace_back(kv::AllCleared{});
}

std::vector<kv::KvEvent> BlockPool::takeEvents() {
  std::vector<kv::KvEvent> out;
  out.swap(events_);
  return out;
}

std::vector<kv::BlockHash> BlockPool::cachedHashes() const {
  std::vector<kv::BlockHash> out;
  out.reserve(by_hash_.size());
  for (const auto& [h, b] : by_hash_) out.push_back(h);
  return out;
}

void BlockPool::evictOne() {
  BlockId victim = -1;
  if (!evictable_.empty()) {
    victim = evictable_.begin()->second;
    evictable_.erase(evictable_.begin());
  } else {
    // Only reachable when a cached-free block has a used child, which the commit protocol
    // prevents except across resetPrefixCache(); fall back to the LRU cached-free block.
    uint64_t best = UINT64_MAX;
    for (BlockId b = 0; b < numBlocks(); ++b) {
      const Meta& m = blocks_[b];
      if (m.ref == 0 && m.has_hash && m.tick < best) best = m.tick, victim = b;
    }
    for (Meta& m : blocks_) {
      if (m.parent == victim) m.parent = -1;
    }
    blocks_[victim].num_children = 0;
  }
  --num_cached_free_;
  if (on_evict_) on_evict_(victim, blocks_[victim].hash, blocks_[victim].parent_hash);
  dropHash(victim);
  free_.push_back(victim);
}

void BlockPool::dropHash(BlockId b) {
  Meta& m = blocks_[b];
  by_hash_.erase(m.hash);
  emitRemoved(m.hash);
  m.has_hash = false;
  if (m.parent >= 0) {
    const BlockId p = m.parent;
    --blocks_[p].num_children;
    markEvictableIfLeaf(p);
  }
  m.parent = -1;
}

void BlockPool::markEvictableIfLeaf(BlockId b) {
  const Meta& m = blocks_[b];
  if (m.ref == 0 && m.has_hash && m.num_children == 0) evictable_.insert({m.tick, b});
}

void BlockPool::emitStored(kv::BlockHash hash, std::optional<kv::BlockHash> parent) {
  kv::appendEvent(events_, kv::BlockStored{{hash}, parent, kv::Tier::kDevice});
}

void BlockPool::emitRemoved(kv::BlockHash hash) {
  kv::appendEvent(events_, kv::BlockRemoved{{hash}, kv::Tier::kDevice});
}

void BlockPool::appendEvents(std::vector<kv::KvEvent> events) {
  for (auto& e : events) kv::appendEvent(events_, std::move(e));
}

Status BlockPool::checkInvariants() const {
  std::vector<int> on_free(blocks_.size(), 0);
  for (BlockId b : free_) {
    if (on_free[b]++) return internalError("block " + std::to_string(b) + " twice on free list");
    if (blocks_[b].ref != 0 || blocks_[b].has_hash)
      return internalError("free block " + std::to_string(b) + " is used or hashed");
  }
  int32_t cached_free = 0;
  size_t leaves = 0;
  std::vector<int32_t> children(blocks_.size(), 0);
  for (BlockId b = 0; b < numBlocks(); ++b) {
    const Meta& m = blocks_[b];
    if (m.ref < 0) return internalError("block " + std::to_string(b) + " negative ref");
    if (m.ref == 0 && !m.has_hash && !on_free[b])
      return internalError("block " + std::to_string(b) + " leaked (ref 0, not free)");
    if (m.has_hash) {
      const auto it = by_hash_.find(m.hash);
      if (it == by_hash_.end() || it->second != b)
        return internalError("block " + std::to_string(b) + " hash not indexed");
      if (m.parent >= 0) ++children[m.parent];
    }
    if (m.ref == 0 && m.has_hash) {
      ++cached_free;
      if (m.num_children == 0) {
        ++leaves;
        if (!evictable_.count({m.tick, b}))
          return internalError("cached-free leaf " + std::to_string(b) + " not evictable");
      }
    }
  }
  for (BlockId b = 0; b < numBlocks(); ++b) {
    if (children[b] != blocks_[b].num_children)
      return internalError("block " + std::to_string(b) + " child count wrong");
  }
  if (cached_free != num_cached_free_) return internalError("cached-free count wrong");
  if (leaves != evictable_.size()) return internalError("evictable set has extra entries");
  if (by_hash_.size() > blocks_.size()) return internalError("hash index larger than pool");
  return Status::ok();
}

}  // namespace turbine::engine
