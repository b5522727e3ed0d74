// BpeModel: the BPE merge loop over one pre-tokenized piece.
// Two merge orders:
//  - kRank (tokenizers' BPE, GGUF gpt2): a merge table (left id, right id) -> (rank, merged id);
//    the lowest rank merges first, ties go to the leftmost pair.
//  - kScore (SentencePiece BPE, GGUF llama): two adjacent symbols merge when their concatenation
//    is a mergeable vocabulary token; the highest score merges first, ties leftmost.
// Both run on a doubly-linked symbol list and a binary heap: O(n log n) in the piece length.
// Symbols left that are not in the vocabulary become byte-fallback tokens <0xNN> when the vocab
// has them, else the unknown token, else they are dropped (as tokenizers does).
// Thread safety: immutable after create(); encodePiece() may run on many threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace turbine::model {

// Transparent hash so maps keyed by std::string can be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  enum class Mode { kRank, kScore } mode = Mode::kRank;
  bool ignore_merges = false;  // a piece that is itself a token is emitted whole (Llama 3)
  bool byte_fallback = false;  // unknown characters become <0xNN> tokens
  int32_t unk_id = -1;
  bool fuse_unk = false;  // consecutive unknowns become one unk token
};

class BpeModel {
 public:
  // `tokens[i]` is the text of id i (empty for ids the model does not define).
  // kRank: `merges` in rank order, each a (left, right) pair of token texts; a merge naming an
  //   unknown token is an InvalidArgument naming it.
  // kScore: `scores[i]` per id; `mergeable[i]` false excludes id i from being a merge result
  //   (control, byte and unused tokens).
  static Result<BpeModel> create(std::vector<std::string> tokens, BpeOptions options,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 std::vector<float> scores, std::vector<bool> mergeable);

  // Appends the ids of `piece` (already normalized / byte-mapped) to `out`.
  void encodePiece(std::string_view piece, std::vector<int32_t>* out) const;

  std::optional<int32_t> find(std::string_view text) const;
  const std::vector<std::string>& tokens() const { return tokens_; }
  const BpeOptions& options() const { return options_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  static uint64_t pairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Priority of merging adjacent symbols (lower is better) and the merged id; false if none.
  bool mergeOf(std::string_view piece, uint32_t a_begin, int32_t a_id, uint32_t b_end, int32_t b_id,
               double* priority, int32_t* merged) const;
  void emitUnknown(std::string_view text, std::vector<int32_t>* out, bool* last_unk) const;

  std::vector<std::string> tokens_;
  TokenMap index_;
  BpeOptions options_;
  std::unordered_map<uint64_t, Merge> merges_;  // kRank
  std::vector<float> scores_;                   // kScore
  std::vector<bool> mergeable_;                 // kScore
  int32_t byte_ids_[256];
};

}  // namespace turbine::model
