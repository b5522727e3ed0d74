#include "mocker/trace.h"

#include <algorithm>
#include <limits>
#include <list>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace turbine::mocker {

void giveDistinctBlocks(std::vector<TraceRequest>& trace, int32_t block_size) {
  int64_t next = 0;
  for (const auto& r : trace) {
    for (int64_t id : r.hash_ids) next = std::max(next, id + 1);
  }
  const int64_t bs = std::max(block_size, 1);
  for (auto& r : trace) {
    if (!r.hash_ids.empty()) continue;
    const int64_t blocks = std::max<int64_t>((r.input_length + bs - 1) / bs, 1);
    for (int64_t b = 0; b < blocks; ++b) r.hash_ids.push_back(next++);
  }
}

namespace {

// Belady's MIN over the flattened block accesses: hits of an optimal offline cache.
int64_t optimalHits(const std::vector<TraceRequest>& trace, int64_t capacity) {
  std::vector<int64_t> ids;
  for (const auto& r : trace) ids.insert(ids.end(), r.hash_ids.begin(), r.hash_ids.end());
  constexpr size_t kNever = std::numeric_limits<size_t>::max();
  std::vector<size_t> next(ids.size(), kNever);
  std::unordered_map<int64_t, size_t> last;
  for (size_t i = ids.size(); i-- > 0;) {
    auto it = last.find(ids[i]);
    if (it != last.end()) next[i] = it->second;
    last[ids[i]] = i;
  }
  std::unordered_map<int64_t, size_t> in_cache;  // id -> its next use
  std::set<std::pair<size_t, int64_t>> by_next;
  int64_t hits = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = in_cache.find(ids[i]);
    if (it != in_cache.end()) {
      ++hits;
      by_next.erase({it->second, ids[i]});
      it->second = next[i];
      by_next.insert({next[i], ids[i]});
      continue;
    }
    if (next[i] == kNever || capacity <= 0) continue;
    if (static_cast<int64_t>(in_cache.size()) >= capacity) {
      auto worst = std::prev(by_next.end());
      if (worst->first <= next[i]) continue;  // bypass: everything cached is needed sooner
      in_cache.erase(worst->second);
      by_next.erase(worst);
    }
    in_cache[ids[i]] = next[i];
    by_next.insert({next[i], ids[i]});
  }
  return hits;
}

}  // namespace

HitBounds computeHitBounds(const std::vector<TraceRequest>& trace, int64_t pooled_capacity_blocks) {
  HitBounds b;
  std::unordered_set<int64_t> seen;
  std::list<int64_t> lru;  // front = most recent
  std::unordered_map<int64_t, std::list<int64_t>::iterator> where;
  for (const auto& r : trace) {
    b.total_blocks += static_cast<int64_t>(r.hash_ids.size());
    size_t i = 0;
    while (i < r.hash_ids.size() && seen.count(r.hash_ids[i])) ++i;
    b.infinite_hit_blocks += static_cast<int64_t>(i);
    seen.insert(r.hash_ids.begin(), r.hash_ids.end());
    i = 0;
    while (i < r.hash_ids.size() && where.count(r.hash_ids[i])) ++i;
    b.pooled_hit_blocks += static_cast<int64_t>(i);
    for (auto it = r.hash_ids.rbegin(); it != r.hash_ids.rend(); ++it) {
      if (auto w = where.find(*it); w != where.end()) lru.erase(w->second);
      lru.push_front(*it);
      where[*it] = lru.begin();
      if (static_cast<int64_t>(lru.size()) > pooled_capacity_blocks) {
        where.erase(lru.back());
        lru.pop_back();
      }
    }
  }
  b.optimal_hit_blocks = optimalHits(trace, pooled_capacity_blocks);
  return b;
}

}  // namespace turbine::mocker
