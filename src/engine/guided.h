// Guided decoding (structured output) in the engine: requests whose Request::constraint is set
// draw each token from those the constraint allows next (docs/design.md "Structured output").
//
// GuidedDecoding is engine-wide: the vocabulary's token bytes as a trie, and the constraints
// compiled so far (structured::ConstraintCache, kMaxGrammars of them). Memory: at most
// kMaxGrammars x 128 cached masks of vocab bits (32 MB for a 128k vocabulary).
// Thread safety: compile() is safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "common/status.h"
#include "structured/constraint.h"
#include "structured/constraint_cache.h"
#include "structured/matcher.h"
#include "structured/token_trie.h"

namespace turbine::model {
class Tokenizer;
}

namespace turbine::engine {

using GuidedGrammar = structured::CompiledConstraint;

class GuidedDecoding {
 public:
  static constexpr size_t kMaxGrammars = 16;

  explicit GuidedDecoding(std::shared_ptr<const structured::TokenTrie> trie) : trie_(std::move(trie)) {}

  // InvalidArgument naming what is wrong with the constraint.
  Result<std::shared_ptr<GuidedGrammar>> compile(const structured::OutputConstraint& c) {
    return grammars_.compile(c);
  }
  const structured::TokenTrie& trie() const { return *trie_; }

 private:
  std::shared_ptr<const structured::TokenTrie> trie_;
  structured::ConstraintCache grammars_{kMaxGrammars};
};

// The token bytes of `tokenizer` for a model of `vocab_size` ids (ids past the tokenizer's and
// special tokens are never allowed by a constraint).
std::shared_ptr<const structured::TokenTrie> tokenTrieFor(const model::Tokenizer& tokenizer,
                                                          int32_t vocab_size);

}  // namespace turbine::engine
