// Byte-level BPE training (the algorithm of Hugging Face's ByteLevel BPE trainer): text is split
// by the Llama-3 pre-tokenizer regex (PCRE2, UTF-8 + UCP), each piece is a word of bytes, and the
// most frequent adjacent pair of symbols is merged until the vocabulary is full.
// Token ids: 0..255 are the single bytes (byte b has id b), then one id per learned merge, then
// the special tokens, then <|reserved_N|> padding when the text runs out of pairs, so that the
// vocabulary has exactly `vocab_size` entries. Token strings use the GPT-2 byte-level alphabet.
// Deterministic: the corpus is a fixed, sorted list of files read up to a byte cap, and ties
// between pairs of equal count go to the pair of smaller (left id, right id).
// Thread safety: the functions are re-entrant.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace turbine::model {

// The Llama-3 pre-tokenizer pattern.
extern const char* const kLlama3PreTokenizerRegex;

struct BpeTrainerOptions {
  // Total number of tokens: 256 bytes + merges + special tokens (+ reserved padding).
  int32_t vocab_size = 2048;
  // Appended after the learned tokens, in this order.
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  // Corpus files, read in this order (missing ones are skipped). Empty: defaultCorpusFiles().
  std::vector<std::string> files;
  // At most this many bytes of text are read (whole files until the cap, the last one cut).
  size_t max_bytes = size_t{4} << 20;
};

struct BpeVocab {
  std::vector<std::string> tokens;  // id -> token text (byte-level alphabet for learned tokens)
  std::vector<std::string> merges;  // "left right", in priority order
  int32_t first_special_id = 0;     // ids >= this are special (specials, then reserved)
  int32_t num_learned = 0;          // tokens learned from merges (ids 256 .. 256+num_learned-1)
  size_t corpus_bytes = 0;          // bytes of text trained on
};

// Text files present on every Debian 12 system (base-files licenses, perl-base and debconf
// modules), sorted. Stable across machines with the same package versions.
std::vector<std::string> defaultCorpusFiles();

Result<BpeVocab> trainBpe(const BpeTrainerOptions& options);
// Trains on `text` directly (options.files and max_bytes are ignored).
Result<BpeVocab> trainBpeOnText(std::string_view text, const BpeTrainerOptions& options);

// Maps bytes to the GPT-2 byte-level alphabet (UTF-8 encoded).
std::string byteLevelEncodeBytes(std::string_view bytes);

}  // namespace turbine::model
