// Matcher: where the bytes generated so far stand in a Grammar, and which tokens may come next.
//
// The state is the set of parser stacks consistent with the bytes so far (a nondeterministic
// pushdown automaton): each head is a position at a byte class in some alternative plus the
// stack of positions to return to, kept as persistent lists that share their tails in one arena.
// A rule that ends an alternative is entered without a return frame, so repetition written as
// right recursion (`chars -> char chars | ""`) keeps the stack flat.
//
// Thread safety: none; one Matcher per generated sequence, used by the engine's step loop.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "structured/grammar.h"
#include "structured/token_trie.h"

namespace turbine::structured {

// Token masks of local states, shared by the matchers of ONE grammar over ONE vocabulary
// (the caller keeps them together). A local state is the heads with the first frames of their
// stacks; tokens that stay within it are decided once and cached, the rest ("uncertain": they
// reach below the kept frames) are checked against the full state at each use.
// Thread safety: every method is safe from any thread.
class MaskCache {
 public:
  explicit MaskCache(size_t max_entries = 128) : max_entries_(max_entries) {}
  size_t size();

 private:
  friend class Matcher;
  struct Entry {
    std::vector<uint64_t> certain;    // tokens allowed whatever lies below the kept frames
    std::vector<int32_t> uncertain;   // tokens to check against the full state
    int64_t walk_steps = 0;           // trie nodes the walk that made this entry stepped through
    int64_t uncertain_bytes = 0;      // bytes of the uncertain tokens (their checks step as many)
  };
  std::shared_ptr<const Entry> find(const std::vector<int32_t>& key);
  void insert(std::vector<int32_t> key, std::shared_ptr<const Entry> entry);

  std::mutex mu_;
  std::map<std::vector<int32_t>, std::shared_ptr<const Entry>> entries_;
  size_t max_entries_;
};

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> grammar);

  // Feeds bytes. False when they cannot continue a sentence of the grammar; the state is then
  // unchanged.
  bool advance(std::string_view bytes);
  // The bytes so far are a complete sentence (generation may end here).
  bool accepting() const { return accepting_; }
  // Some byte may still follow.
  bool canContinue() const { return !heads_.empty(); }
  // Whether `bytes` could be fed now (the state is not changed).
  bool allows(std::string_view bytes);

  // Sets bit `id` of `mask` (little-endian 64-bit words, vocabSize() bits) for every token of
  // `trie` whose bytes may follow now; other bits are left as they are. With a cache (of this
  // grammar over this trie) repeated local states cost a lookup and the uncertain tokens' checks.
  void fillMask(const TokenTrie& trie, std::span<uint64_t> mask, MaskCache* cache = nullptr);

  const Grammar& grammar() const { return *g_; }

 private:
  struct Node {
    int32_t pos;     // a position in the grammar's flat encoding
    int32_t parent;  // arena index of the frame to return to; -1: the bottom
  };

  // Parent values below the bottom (-1) stand for frames left out of a local state.
  static constexpr int32_t kSentinel = -2;

  // Heads reached from position `pos` under `parent` without consuming a byte. Popping into a
  // sentinel sets sentinel_hit_.
  void expand(int32_t pos, int32_t parent, std::vector<Node>* out, bool* accepting, int depth);
  // Walks the trie from `start`: tokens decided allowed go to `certain`; tokens whose fate
  // depends on frames below a sentinel to `uncertain` (in the trie's order). Returns the number
  // of trie nodes stepped through.
  int64_t walk(const TokenTrie& trie, std::span<const Node> start, std::span<uint64_t> certain,
            std::vector<int32_t>* uncertain);
  // Structural equality of frame chains and of states (false negatives are harmless: only a
  // shortcut is missed).
  bool sameFrames(int32_t a, int32_t b) const;
  bool sameState(std::span<const Node> a, std::span<const Node> b) const;
  // The bytes that lead from `state` back to an equal state.
  ByteSet loopBytes(std::span<const Node> state);
  // The cache key of the current state and its local heads (pushed onto the arena).
  std::vector<int32_t> localKey(std::vector<Node>* local);
  // The heads after byte `b` from `from`; returns whether the grammar may end there.
  bool step(std::span<const Node> from, uint8_t b, std::vector<Node>* out);
  int32_t push(int32_t pos, int32_t parent);
  void compact();

  std::shared_ptr<const Grammar> g_;
  std::vector<Node> arena_;  // return frames
  std::vector<Node> heads_;  // each at a byte class, sorted and unique
  bool accepting_ = false;
  size_t compact_at_ = 1 << 16;
  std::vector<std::vector<Node>> levels_;  // fillMask's heads per trie depth
  std::vector<size_t> marks_;              // fillMask's arena size per trie depth
  std::vector<char> hit_before_;           // fillMask: a path met a sentinel at or above depth
  bool sentinel_hit_ = false;
  std::vector<Node> tmp_a_, tmp_b_;  // allows()' scratch
};

}  // namespace turbine::structured
