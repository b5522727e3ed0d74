// SseFramer: splits a Server-Sent-Events byte stream (as an OpenAI-compatible server streams a
// completion: `data: {json}` events separated by blank lines, ending with `data: [DONE]`) into
// its events' data, fed the body bytes as they arrive. Events split across reads are
// reassembled; "\r\n" line ends are accepted; comment lines and fields other than `data` are
// ignored, and an event's several `data:` lines are joined with '\n' (the SSE rule).
// Used by the load generator (bench::SseParser) and the upstream worker (worker::UpstreamClient).
// Thread safety: none (one framer per stream).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace turbine {

class SseFramer {
 public:
  // Appends bytes and returns the data of every event completed by them, in order (events
  // without a data line are skipped).
  std::vector<std::string> feed(std::string_view bytes);
  // Bytes held back that do not yet form a complete event.
  size_t pending() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace turbine
