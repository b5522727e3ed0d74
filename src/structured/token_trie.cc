#include "structured/token_trie.h"

#include <algorithm>

namespace turbine::structured {

TokenTrie::TokenTrie(const std::vector<std::string>& token_bytes,
                     const std::vector<uint8_t>& excluded)
    : bytes_(token_bytes), in_trie_(token_bytes.size(), 0) {
  std::vector<int32_t> order;
  for (size_t id = 0; id < bytes_.size(); ++id) {
    const bool skip = bytes_[id].empty() || (id < excluded.size() && excluded[id]);
    if (!skip) order.push_back(static_cast<int32_t>(id)), in_trie_[id] = 1;
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return bytes_[a] < bytes_[b] || (bytes_[a] == bytes_[b] && a < b);
  });
  nodes_.push_back(Node{});  // the root
  below_.emplace_back();
  std::vector<int32_t> path = {0};  // node index per depth of the previous token's spelling
  std::string_view prev;
  for (int32_t id : order) {
    const std::string_view s = bytes_[id];
    size_t common = 0;
    while (common < s.size() && common < prev.size() && s[common] == prev[common]) ++common;
    // Close the previous spelling's nodes deeper than the common prefix.
    while (path.size() > common + 1) close(&path);
    for (size_t d = common; d < s.size(); ++d) {
      Node n;
      n.depth = static_cast<int32_t>(d + 1);
      n.byte = static_cast<uint8_t>(s[d]);
      n.sub_tok_begin = static_cast<int32_t>(ids_.size());
      path.push_back(static_cast<int32_t>(nodes_.size()));
      nodes_.push_back(n);
      below_.emplace_back();
    }
    Node& end = nodes_[path.back()];
    if (end.tok_begin == end.tok_end) end.tok_begin = end.tok_end = static_cast<int32_t>(ids_.size());
    ids_.push_back(id);
    end.tok_end = static_cast<int32_t>(ids_.size());
    max_depth_ = std::max(max_depth_, static_cast<int32_t>(s.size()));
    prev = s;
  }
  while (!path.empty()) close(&path);
}

void TokenTrie::close(std::vector<int32_t>* path) {
  const int32_t i = path->back();
  path->pop_back();
  Node& n = nodes_[static_cast<size_t>(i)];
  n.subtree_end = static_cast<int32_t>(nodes_.size());
  n.sub_tok_end = static_cast<int32_t>(ids_.size());
  if (!path->empty()) {
    ByteSet& up = below_[static_cast<size_t>(path->back())];
    up.add(n.byte).addAll(below_[static_cast<size_t>(i)]);
  }
}

}  // namespace turbine::structured
