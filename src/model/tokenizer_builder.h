// Internal to the tokenizer: the parts a loader (tokenizer.json, GGUF) fills in, and the one
// place that turns them into a Tokenizer and checks they are consistent.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace turbine::model {

struct TokenizerParts {
  // How a vocabulary token's text becomes bytes when decoding.
  enum class DecodeMode {
    kByteLevel,      // map characters back through the GPT-2 byte alphabet
    kSentencePiece,  // '▁' -> ' ', <0xNN> -> that byte
    kRaw,            // the text as is
  };
  std::vector<std::string> texts;  // id -> vocabulary text (model vocab and added tokens)
  std::unique_ptr<BpeModel> bpe;
  DecodeMode decode = DecodeMode::kByteLevel;
  std::vector<AddedToken> added;
  Normalizer normalizer;
  PreTokenizer pre;
  std::vector<int32_t> prefix_ids;
  std::vector<int32_t> suffix_ids;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool strip_leading_space = false;
  std::string source;  // file name, for error messages
};

class TokenizerBuilder {
 public:
  static Result<std::unique_ptr<Tokenizer>> build(TokenizerParts parts);
};

}  // namespace turbine::model
