#include "engine/guided.h"

#include <vector>

#include "model/tokenizer.h"

namespace turbine::engine {

Result<std::shared_ptr<GuidedGrammar>> GuidedDecoding::compile(const structured::OutputConstraint& c) {
  {
    std::lock_guard lk(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (it->first.sameRule(c)) {
        lru_.splice(lru_.begin(), lru_, it);
        return lru_.front().second;
      }
    }
  }
  TURBINE_ASSIGN_OR_RETURN(std::shared_ptr<const structured::Grammar> g,
                           structured::compileConstraint(c));  // outside the lock: may take a while
  auto gg = std::make_shared<GuidedGrammar>();
  gg->grammar = std::move(g);
  std::lock_guard lk(mu_);
  lru_.emplace_front(structured::OutputConstraint{c.kind, c.spec, 0}, gg);
  if (lru_.size() > kMaxGrammars) lru_.pop_back();
  return gg;
}

std::shared_ptr<const structured::TokenTrie> tokenTrieFor(const model::Tokenizer& tokenizer,
                                                          int32_t vocab_size) {
  std::vector<std::string> bytes(static_cast<size_t>(vocab_size));
  std::vector<uint8_t> excluded(static_cast<size_t>(vocab_size), 1);
  for (int32_t id = 0; id < vocab_size && id < tokenizer.vocabSize(); ++id) {
    bytes[static_cast<size_t>(id)] = std::string(tokenizer.tokenBytes(id));
    excluded[static_cast<size_t>(id)] = tokenizer.isSpecial(id) ? 1 : 0;
  }
  return std::make_shared<const structured::TokenTrie>(bytes, excluded);
}

}  // namespace turbine::engine
