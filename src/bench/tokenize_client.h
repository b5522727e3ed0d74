// TokenizeClient: blocking client of the server's POST /tokenize ({"model", "prompt"} ->
// {"tokens": [...], "count": N}, vLLM's and Turbine's format), used before a run to build prompts
// with exact token counts. calibrateWords keeps the candidate words that the server's tokenizer
// maps to exactly one token when preceded by a space, with their ids (which then also serve as
// the token-id pool: ordinary, in-vocabulary tokens).
// Thread safety: none; one client per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::bench {

class TokenizeClient {
 public:
  // Connects lazily; errors come from tokenize().
  TokenizeClient(std::string url, std::string model, std::string api_key, double timeout_s = 30.0);
  ~TokenizeClient();
  TokenizeClient(TokenizeClient&&) noexcept;

  // Token ids of text (with the tokenizer's special tokens, e.g. BOS). NotFound when the server
  // has no /tokenize endpoint; Unavailable when it cannot be reached.
  Result<std::vector<int32_t>> tokenize(const std::string& text);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

struct WordCalibration {
  std::vector<std::string> words;  // one token each after a space
  std::vector<int32_t> ids;        // their token ids, same order
  int32_t special_tokens = 0;      // tokens the tokenizer adds to any text (BOS)
};
Result<WordCalibration> calibrateWords(TokenizeClient& client,
                                       const std::vector<std::string>& candidates);

}  // namespace turbine::bench
