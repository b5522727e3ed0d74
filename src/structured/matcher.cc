#include "structured/matcher.h"

#include <algorithm>
#include <climits>
#include <unordered_map>
#include <utility>

namespace turbine::structured {
namespace {

// Deeper than this, expansion gives up on the path (a grammar this nested is not one we build).
constexpr int kMaxExpandDepth = 2000;
// More live heads than this: the input is treated as rejected (a runaway ambiguous grammar).
constexpr size_t kMaxHeads = 1 << 14;
// Stack frames kept under each head in a local state (MaskCache key).
constexpr int kLocalFrames = 1;
constexpr int32_t kKeySeparator = INT32_MIN;

bool isSubset(const ByteSet& a, const ByteSet& b) {
  for (int i = 0; i < 4; ++i) {
    if ((a.bits[i] & ~b.bits[i]) != 0) return false;
  }
  return true;
}

bool nodeLess(const auto& a, const auto& b) {
  return a.pos < b.pos || (a.pos == b.pos && a.parent < b.parent);
}

}  // namespace

Matcher::Matcher(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)) {
  for (int32_t alt : g_->alternatives(g_->root())) expand(alt, -1, &heads_, &accepting_, 0);
  std::sort(heads_.begin(), heads_.end(), nodeLess<Node, Node>);
  heads_.erase(std::unique(heads_.begin(), heads_.end(),
                           [](const Node& a, const Node& b) {
                             return a.pos == b.pos && a.parent == b.parent;
                           }),
               heads_.end());
}

int32_t Matcher::push(int32_t pos, int32_t parent) {
  arena_.push_back({pos, parent});
  return static_cast<int32_t>(arena_.size()) - 1;
}

void Matcher::expand(int32_t pos, int32_t parent, std::vector<Node>* out, bool* accepting,
                     int depth) {
  if (depth > kMaxExpandDepth) return;
  for (;;) {
    const int32_t e = g_->elem(pos);
    if (e >= 0) {
      out->push_back({pos, parent});
      return;
    }
    if (e != Grammar::kEnd) break;
    if (parent < 0) {
      if (parent == -1) {
        *accepting = true;
      } else {
        sentinel_hit_ = true;
      }
      return;
    }
    const Node ret = arena_[parent];  // the rule ends: continue in the caller
    pos = ret.pos;
    parent = ret.parent;
  }
  const int32_t rule = Grammar::ruleOf(g_->elem(pos));
  // A rule in tail position returns straight to our caller: no frame of its own.
  const int32_t ret = g_->elem(pos + 1) == Grammar::kEnd ? parent : push(pos + 1, parent);
  for (int32_t alt : g_->alternatives(rule)) expand(alt, ret, out, accepting, depth + 1);
}

bool Matcher::step(std::span<const Node> from, uint8_t b, std::vector<Node>* out) {
  out->clear();
  bool accepting = false;
  for (const Node& h : from) {
    if (g_->byteClass(g_->elem(h.pos)).has(b)) expand(h.pos + 1, h.parent, out, &accepting, 0);
  }
  if (out->size() > 1) {
    std::sort(out->begin(), out->end(), nodeLess<Node, Node>);
    out->erase(std::unique(out->begin(), out->end(),
                           [](const Node& a, const Node& c) {
                             return a.pos == c.pos && a.parent == c.parent;
                           }),
               out->end());
  }
  if (out->size() > kMaxHeads) {
    out->clear();
    return false;
  }
  return accepting;
}

bool Matcher::advance(std::string_view bytes) {
  if (bytes.empty()) return true;
  const size_t mark = arena_.size();
  std::vector<Node> cur = heads_, next;
  bool accepting = accepting_;
  for (char c : bytes) {
    accepting = step(cur, static_cast<uint8_t>(c), &next);
    if (next.empty() && !accepting) {
      arena_.resize(mark);
      return false;
    }
    cur.swap(next);  // empty when only the end is left: a further byte is then rejected
  }
  heads_ = std::move(cur);
  accepting_ = accepting;
  if (arena_.size() >= compact_at_) compact();
  return true;
}

bool Matcher::allows(std::string_view bytes) {
  const size_t mark = arena_.size();
  std::vector<Node>& cur = tmp_a_;
  std::vector<Node>& next = tmp_b_;
  cur.assign(heads_.begin(), heads_.end());
  bool ok = true;
  for (size_t i = 0; i < bytes.size() && ok; ++i) {
    const bool acc = step(cur, static_cast<uint8_t>(bytes[i]), &next);
    ok = !next.empty() || (acc && i + 1 == bytes.size());
    cur.swap(next);
  }
  arena_.resize(mark);
  return ok;
}

int64_t Matcher::walk(const TokenTrie& trie, std::span<const Node> start, std::span<uint64_t> certain,
                      std::vector<int32_t>* uncertain) {
  int64_t steps = 0;
  const std::span<const TokenTrie::Node> nodes = trie.nodes();
  const std::span<const int32_t> ids = trie.tokenIds();
  const size_t depth_max = static_cast<size_t>(trie.maxDepth()) + 1;
  if (levels_.size() < depth_max) levels_.resize(depth_max);
  marks_.assign(depth_max, 0);
  hit_before_.assign(depth_max, 0);
  levels_[0].assign(start.begin(), start.end());
  marks_[0] = arena_.size();
  auto tokensAt = [&](const TokenTrie::Node& node, bool sure) {
    for (int32_t t = node.tok_begin; t < node.tok_end; ++t) {
      const int32_t id = ids[t];
      if (sure) {
        certain[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
      } else {
        uncertain->push_back(id);
      }
    }
  };
  // Bytes that take the start state back to itself (inside a string, nearly all): a subtree
  // spelled with them alone only ever sees the start state, so all its tokens are allowed.
  ByteSet loop;
  bool loop_known = false;
  const auto n = static_cast<int32_t>(nodes.size());
  for (int32_t i = 1; i < n;) {
    const TokenTrie::Node& node = nodes[i];
    const auto d = static_cast<size_t>(node.depth);
    arena_.resize(marks_[d - 1]);  // frames of the previous sibling's subtree are garbage
    sentinel_hit_ = false;
    ++steps;
    const bool acc = step(levels_[d - 1], node.byte, &levels_[d]);
    marks_[d] = arena_.size();
    const bool earlier = hit_before_[d - 1] != 0;  // a path left the local state before
    hit_before_[d] = earlier || sentinel_hit_;
    const bool live = !levels_[d].empty();
    if (live && sameState(levels_[d], levels_[0])) {
      if (!loop_known) {
        loop = loopBytes(levels_[0]);
        loop_known = true;
      }
      if (isSubset(trie.bytesBelow(i), loop)) {
        for (int32_t t = node.sub_tok_begin; t < node.sub_tok_end; ++t) {
          const int32_t id = ids[t];
          certain[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
        }
        i = node.subtree_end;
        continue;
      }
    }
    if (live || acc || sentinel_hit_) {
      tokensAt(node, true);  // some path is valid through this byte
    } else if (earlier) {
      tokensAt(node, false);
    }
    if (live) {
      ++i;
      continue;
    }
    if (hit_before_[d]) {  // deeper tokens continue below the local state: unknown here
      for (int32_t j = i + 1; j < node.subtree_end; ++j) tokensAt(nodes[j], false);
    }
    i = node.subtree_end;
  }
  arena_.resize(marks_[0]);
  return steps;
}

bool Matcher::sameFrames(int32_t a, int32_t b) const {
  while (a != b) {
    if (a < 0 || b < 0 || arena_[a].pos != arena_[b].pos) return false;
    a = arena_[a].parent;
    b = arena_[b].parent;
  }
  return true;
}

bool Matcher::sameState(std::span<const Node> a, std::span<const Node> b) const {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].pos != b[i].pos || !sameFrames(a[i].parent, b[i].parent)) return false;
  }
  return true;
}

ByteSet Matcher::loopBytes(std::span<const Node> state) {
  ByteSet loop;
  const size_t mark = arena_.size();
  const bool hit = sentinel_hit_;
  for (int b = 0; b < 256; ++b) {
    step(state, static_cast<uint8_t>(b), &tmp_a_);
    if (sameState(tmp_a_, state)) loop.add(static_cast<uint8_t>(b));
    arena_.resize(mark);
  }
  sentinel_hit_ = hit;
  return loop;
}

std::vector<int32_t> Matcher::localKey(std::vector<Node>* local) {
  std::vector<int32_t> key;
  int32_t chain[kLocalFrames] = {};
  for (const Node& h : heads_) {
    key.push_back(h.pos);
    int32_t f = h.parent;
    int kept = 0;
    for (; kept < kLocalFrames && f >= 0; ++kept) {
      chain[kept] = arena_[f].pos;
      key.push_back(chain[kept]);
      f = arena_[f].parent;
    }
    const int32_t tail = f == -1 ? -1 : kSentinel;
    key.push_back(tail);
    key.push_back(kKeySeparator);
    int32_t parent = tail;
    for (int k = kept - 1; k >= 0; --k) parent = push(chain[k], parent);
    local->push_back({h.pos, parent});
  }
  return key;
}

void Matcher::fillMask(const TokenTrie& trie, std::span<uint64_t> mask, MaskCache* cache) {
  if (cache == nullptr) {
    walk(trie, heads_, mask, nullptr);
    return;
  }
  const size_t mark = arena_.size();
  std::vector<Node> local;
  std::vector<int32_t> key = localKey(&local);
  std::shared_ptr<const MaskCache::Entry> entry = cache->find(key);
  if (!entry) {
    auto fresh = std::make_shared<MaskCache::Entry>();
    fresh->certain.assign(mask.size(), 0);
    fresh->walk_steps = walk(trie, local, fresh->certain, &fresh->uncertain);
    for (int32_t id : fresh->uncertain) fresh->uncertain_bytes += static_cast<int64_t>(trie.bytes(id).size());
    entry = fresh;
    cache->insert(std::move(key), entry);
  }
  arena_.resize(mark);
  if (entry->uncertain_bytes > entry->walk_steps) {
    // Checking the uncertain tokens one by one would step through more bytes than a walk from
    // the full state (which shares their prefixes): e.g. a grammar allowing whitespace before
    // every token, where each token that starts with a space leaves the local state.
    walk(trie, heads_, mask, nullptr);
    return;
  }
  for (size_t w = 0; w < mask.size() && w < entry->certain.size(); ++w) mask[w] |= entry->certain[w];
  for (int32_t id : entry->uncertain) {
    if (allows(trie.bytes(id))) mask[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
  }
}

size_t MaskCache::size() {
  std::lock_guard lk(mu_);
  return entries_.size();
}

std::shared_ptr<const MaskCache::Entry> MaskCache::find(const std::vector<int32_t>& key) {
  std::lock_guard lk(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

void MaskCache::insert(std::vector<int32_t> key, std::shared_ptr<const Entry> entry) {
  std::lock_guard lk(mu_);
  if (entries_.size() >= max_entries_) entries_.clear();  // rare: a grammar with many local states
  entries_.emplace(std::move(key), std::move(entry));
}

void Matcher::compact() {
  // Copy the frames the heads can still reach into a fresh arena.
  std::vector<Node> fresh;
  std::unordered_map<int32_t, int32_t> moved;
  auto relocate = [&](int32_t idx, auto&& self) -> int32_t {
    if (idx < 0) return -1;
    if (auto it = moved.find(idx); it != moved.end()) return it->second;
    const Node old = arena_[idx];
    const int32_t parent = self(old.parent, self);
    fresh.push_back({old.pos, parent});
    const auto at = static_cast<int32_t>(fresh.size()) - 1;
    moved.emplace(idx, at);
    return at;
  };
  for (Node& h : heads_) h.parent = relocate(h.parent, relocate);
  arena_ = std::move(fresh);
  std::sort(heads_.begin(), heads_.end(), nodeLess<Node, Node>);
  compact_at_ = std::max<size_t>(1 << 16, arena_.size() * 4);
}

}  // namespace turbine::structured
