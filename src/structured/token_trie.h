// TokenTrie: a vocabulary's token bytes as a byte trie, so that a Matcher can test every token
// against its state while walking each shared prefix once. Nodes are in preorder: a node's
// subtree is [index, subtree_end), its first child (if any) at index + 1; node 0 is the root
// (the empty string). Immutable after construction; safe to share between threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "structured/grammar.h"

namespace turbine::structured {

class TokenTrie {
 public:
  struct Node {
    int32_t subtree_end = 0;  // one past the last node of this node's subtree
    int32_t depth = 0;        // bytes from the root
    int32_t tok_begin = 0;    // [tok_begin, tok_end) in tokenIds(): tokens spelled by this node
    int32_t tok_end = 0;
    int32_t sub_tok_begin = 0;  // [sub_tok_begin, sub_tok_end) in tokenIds(): every token of
    int32_t sub_tok_end = 0;    // the subtree (this node's first)
    uint8_t byte = 0;         // the byte leading here from the parent
  };

  // token_bytes[id]: the bytes token `id` stands for in decoded text. Tokens with
  // `excluded[id]` set (special / control tokens) or no bytes are left out: a constraint never
  // allows them.
  TokenTrie(const std::vector<std::string>& token_bytes, const std::vector<uint8_t>& excluded);

  int32_t vocabSize() const { return static_cast<int32_t>(bytes_.size()); }
  std::string_view bytes(int32_t id) const { return bytes_[id]; }
  bool inTrie(int32_t id) const { return in_trie_[id] != 0; }
  std::span<const Node> nodes() const { return nodes_; }
  std::span<const int32_t> tokenIds() const { return ids_; }
  // The bytes on the edges below node i (what its subtree's tokens spell after it).
  const ByteSet& bytesBelow(int32_t i) const { return below_[static_cast<size_t>(i)]; }
  int32_t maxDepth() const { return max_depth_; }

 private:
  void close(std::vector<int32_t>* path);  // ends the deepest open node

  std::vector<std::string> bytes_;
  std::vector<uint8_t> in_trie_;
  std::vector<Node> nodes_;
  std::vector<int32_t> ids_;
  std::vector<ByteSet> below_;
  int32_t max_depth_ = 0;
};

}  // namespace turbine::structured
