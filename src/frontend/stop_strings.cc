#include "frontend/stop_strings.h"

#include <algorithm>

namespace turbine::frontend {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (s.empty()) continue;
    stops_.push_back(std::move(s));
  }
}

std::string StopStringMatcher::push(std::string_view text) {
  if (stopped_) return {};
  if (stops_.empty()) return std::string(text);
  // Only the held text plus the new text can contain a match: everything shown before was
  // checked not to start one (otherwise it would have been held).
  held_.append(text);
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const auto& s : stops_) {
    size_t pos = held_.find(s);
    if (pos < best) {
      best = pos;
      best_stop = &s;
    }
  }
  if (best_stop != nullptr) {
    stopped_ = true;
    matched_ = *best_stop;
    std::string out = held_.substr(0, best);
    held_.clear();
    return out;
  }
  size_t keep = partialSuffixLength();
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringMatcher::flush() {
  if (stopped_) return {};
  std::string out;
  out.swap(held_);
  return out;
}

size_t heldMarkerPrefix(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.empty() ? 0 : marker.size() - 1); n > 0; --n) {
    if (marker.starts_with(text.substr(text.size() - n))) return n;
  }
  return 0;
}

size_t StopStringMatcher::partialSuffixLength() const {
  size_t keep = 0;
  for (const auto& s : stops_) keep = std::max(keep, heldMarkerPrefix(held_, s));
  return keep;
}

}  // namespace turbine::frontend
