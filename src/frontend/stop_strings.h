// StopStringMatcher: finds OpenAI `stop` strings in streamed, detokenized text.
// Text is pushed piece by piece; push() returns the text that is safe to show the client now.
// Hold-back: any suffix of the unshown text that is a prefix of some stop string is held until
// the next push decides it, so a partial stop string never reaches the client. When a stop
// string appears, the text before its first occurrence is returned, the stop string itself and
// everything after it are dropped, and stopped() becomes true (later pushes return nothing).
// flush() returns the held text when the stream ends without a stop.
// Thread safety: none; one matcher per sequence, used on that sequence's strand.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace turbine::frontend {

// The length of the longest proper prefix of `marker` that `text` ends with: the bytes a stream
// holds back until the next piece says whether `marker` follows (tool-call and reasoning tags).
size_t heldMarkerPrefix(std::string_view text, std::string_view marker);

class StopStringMatcher {
 public:
  StopStringMatcher() = default;
  // Empty strings in `stops` are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);

  std::string push(std::string_view text);
  std::string flush();

  bool stopped() const { return stopped_; }
  // The stop string that matched (empty until stopped()).
  const std::string& matched() const { return matched_; }
  // Bytes currently held back.
  size_t heldBytes() const { return held_.size(); }

 private:
  // Length of the longest suffix of held_ that is a proper prefix of some stop string.
  size_t partialSuffixLength() const;

  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace turbine::frontend
