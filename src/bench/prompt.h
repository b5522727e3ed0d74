// PromptRenderer turns a RequestSpec into the JSON body of an OpenAI-compatible request.
// Prompt units are drawn deterministically from each segment's key (see PromptSegment):
//  - token-id mode (completions only): the prompt is an array of token ids taken from
//    `token_pool`, so its length is exact whatever the server's tokenizer;
//  - text mode: the prompt is words from `words`, chosen to be one token each (with a leading
//    space) by calibrating against the server's /tokenize, so the length is exact up to the
//    tokenizer's handling of the first word and the chat template.
// Every request asks for exactly output_tokens tokens (max_tokens + ignore_eos) and streams with
// usage (stream_options.include_usage). Thread safety: const methods may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_types.h"

namespace turbine::bench {

enum class PromptMode { kTokenIds, kText };

struct PromptOptions {
  std::string model;
  Endpoint endpoint = Endpoint::kCompletions;
  PromptMode mode = PromptMode::kTokenIds;
  std::vector<int32_t> token_pool;  // token-id mode; empty = ids [1000, 21000)
  std::vector<std::string> words;   // text mode; empty = defaultWords()
  uint64_t seed = 0;                // mixed into every unit, so runs with other seeds differ
  int32_t special_tokens = 0;       // text completions: tokens the server adds (BOS), taken off
                                    // the prompt's end so the total stays exact
  bool ignore_eos = true;
};

// 64-bit mix of (key, index, seed); the source of every prompt unit.
uint64_t unitHash(uint64_t key, uint32_t index, uint64_t seed);

class PromptRenderer {
 public:
  explicit PromptRenderer(PromptOptions options);

  std::vector<int32_t> tokens(const std::vector<PromptSegment>& segments) const;
  // Words joined by single spaces.
  std::string text(const std::vector<PromptSegment>& segments) const;
  // The request body for spec (endpoint and mode from the options).
  std::string body(const RequestSpec& spec) const;
  const PromptOptions& options() const { return options_; }

  // ~250 common lowercase English words (most are one token in BPE vocabularies).
  static std::vector<std::string> defaultWords();

 private:
  PromptOptions options_;
};

}  // namespace turbine::bench
