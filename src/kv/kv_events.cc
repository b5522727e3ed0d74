#include "kv/kv_events.h"

#include <string>

namespace turbine::kv {

std::string_view tierName(Tier tier) {
  switch (tier) {
    case Tier::kDevice: return "device";
    case Tier::kHost: return "host";
    case Tier::kDisk: return "disk";
    case Tier::kRemote: return "remote";
  }
  return "unknown";
}

Result<Tier> parseTier(std::string_view name) {
  for (int i = 0; i < kNumTiers; ++i) {
    const auto t = static_cast<Tier>(i);
    if (tierName(t) == name) return t;
  }
  return invalidArgument("unknown KV tier '" + std::string(name) +
                         "' (expected device, host, disk or remote)");
}

void appendEvent(std::vector<KvEvent>& events, KvEvent event) {
  if (!events.empty()) {
    if (auto* s = std::get_if<BlockStored>(&event)) {
      auto* last = std::get_if<BlockStored>(&events.back());
      if (last && last->tier == s->tier && s->parent_hash && !last->block_hashes.empty() &&
          last->block_hashes.back() == *s->parent_hash) {
        last->block_hashes.insert(last->block_hashes.end(), s->block_hashes.begin(),
                                  s->block_hashes.end());
        return;
      }
    } else if (auto* r = std::get_if<BlockRemoved>(&event)) {
      auto* last = std::get_if<BlockRemoved>(&events.back());
      if (last && last->tier == r->tier) {
        last->block_hashes.insert(last->block_hashes.end(), r->block_hashes.begin(),
                                  r->block_hashes.end());
        return;
      }
    }
  }
  events.push_back(std::move(event));
}

void KvBlockSet::apply(const KvEvent& event) {
  if (const auto* s = std::get_if<BlockStored>(&event)) {
    auto& set = sets_[static_cast<int>(s->tier)];
    set.insert(s->block_hashes.begin(), s->block_hashes.end());
  } else if (const auto* r = std::get_if<BlockRemoved>(&event)) {
    auto& set = sets_[static_cast<int>(r->tier)];
    for (BlockHash h : r->block_hashes) set.erase(h);
  } else {
    for (auto& set : sets_) set.clear();
  }
}

Status KvBlockSet::apply(const KvEventMessage& msg) {
  if (last_seq_ && msg.seq != *last_seq_ + 1) {
    return failedPrecondition("KV event seq gap: expected " + std::to_string(*last_seq_ + 1) +
                              ", got " + std::to_string(msg.seq));
  }
  for (const auto& e : msg.events) apply(e);
  last_seq_ = msg.seq;
  return Status::ok();
}

bool KvBlockSet::contains(BlockHash hash, Tier tier) const {
  return hashes(tier).count(hash) != 0;
}

const std::unordered_set<BlockHash>& KvBlockSet::hashes(Tier tier) const {
  return sets_[static_cast<int>(tier)];
}

}  // namespace turbine::kv
