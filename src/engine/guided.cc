#include "engine/guided.h"

#include <vector>

#include "model/tokenizer.h"

namespace turbine::engine {

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
