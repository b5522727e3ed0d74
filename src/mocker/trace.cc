#include "mocker/trace.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <limits>
#include <list>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace turbine::mocker {

Result<TraceRequest> parseMooncakeLine(const std::string& line) {
  TraceRequest r;
  try {
    const auto j = nlohmann::json::parse(line);
    if (!j.is_object()) return invalidArgument("row is not a JSON object");
    for (const char* key : {"timestamp", "input_length", "output_length", "hash_ids"}) {
      if (!j.contains(key)) return invalidArgument(std::string("missing field '") + key + "'");
    }
    if (!j["timestamp"].is_number()) return invalidArgument("'timestamp' must be a number");
    if (!j["input_length"].is_number_integer() || j["input_length"].get<int64_t>() < 1)
      return invalidArgument("'input_length' must be an integer >= 1");
    if (!j["output_length"].is_number_integer() || j["output_length"].get<int64_t>() < 0)
      return invalidArgument("'output_length' must be an integer >= 0");
    if (!j["hash_ids"].is_array()) return invalidArgument("'hash_ids' must be an array");
    r.timestamp_ms = j["timestamp"].get<double>();
    r.input_length = j["input_length"].get<int32_t>();
    r.output_length = j["output_length"].get<int32_t>();
    for (const auto& h : j["hash_ids"]) {
      if (!h.is_number_integer() || h.get<int64_t>() < 0)
        return invalidArgument("'hash_ids' must hold integers >= 0");
      r.hash_ids.push_back(h.get<int64_t>());
    }
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(std::string("invalid JSON: ") + e.what());
  }
  return r;
}

Result<std::vector<TraceRequest>> readMooncakeTrace(const std::string& path, size_t max_requests) {
  std::ifstream in(path);
  if (!in) return notFound("cannot open trace '" + path + "'");
  std::vector<TraceRequest> out;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = parseMooncakeLine(line);
    if (!r) return invalidArgument(path + ":" + std::to_string(line_no) + ": " + r.status().message());
    out.push_back(std::move(*r));
    if (max_requests && out.size() >= max_requests) break;
  }
  if (out.empty()) return invalidArgument(path + ": the trace has no requests");
  return out;
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
