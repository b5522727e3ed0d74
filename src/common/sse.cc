#include "common/sse.h"

#include <utility>

namespace turbine {
namespace {

// Position of the line end that closes the first event at or after `from` (a blank line
// follows it), and the position just past that blank line; npos when no event is complete.
std::pair<size_t, size_t> findEventEnd(const std::string& b, size_t from) {
  for (size_t i = b.find('\n', from); i != std::string::npos; i = b.find('\n', i + 1)) {
    size_t j = i + 1;
    if (j < b.size() && b[j] == '\r') ++j;
    if (j < b.size() && b[j] == '\n') return {i, j + 1};
  }
  return {std::string::npos, std::string::npos};
}

// The event's `data:` lines, joined with '\n'.
std::string eventData(std::string_view event) {
  std::string data;
  bool any = false;
  size_t p = 0;
  while (p < event.size()) {
    const size_t nl = event.find('\n', p);
    std::string_view line = event.substr(p, nl == std::string_view::npos ? nl : nl - p);
    p = nl == std::string_view::npos ? event.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 5) != "data:") continue;
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (any) data.push_back('\n');
    data.append(line);
    any = true;
  }
  return data;
}

}  // namespace

std::vector<std::string> SseFramer::feed(std::string_view bytes) {
  std::vector<std::string> out;
  buf_.append(bytes);
  for (;;) {
    auto [end, next] = findEventEnd(buf_, pos_);
    if (end == std::string::npos) break;
    std::string data = eventData(std::string_view(buf_).substr(pos_, end - pos_));
    pos_ = next;
    if (!data.empty()) out.push_back(std::move(data));
  }
  if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return out;
}

}  // namespace turbine
