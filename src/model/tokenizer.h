// Tokenizer: text <-> token ids, exactly as the model's reference tokenizer (Hugging Face
// `tokenizers` / SentencePiece) does it, from a tokenizer.json or from GGUF metadata.
//
// Supported: BPE models, byte-level (GPT-2, Llama 3, Qwen2, DeepSeek LLM / Coder, Falcon,
// StarCoder pre-tokenizers) and SentencePiece-style (Llama 2, Mistral: '▁' for spaces, dummy
// prefix, <0xNN> byte fallback). WordPiece and Unigram models are Unimplemented.
//
// encode(): added tokens are cut out of the text first (leftmost, longest first); special ones
// only when parse_special. Each remaining segment is normalized, pre-tokenized and BPE-encoded.
// Input that is not valid UTF-8 is first repaired (each ill-formed subpart becomes U+FFFD).
// decode(): token bytes concatenated; ill-formed UTF-8 in the result becomes U+FFFD (as
// tokenizers does); SentencePiece vocabularies drop the one leading space of the dummy prefix.
//
// Thread safety: immutable after construction; every const method may run on many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/pretokenizer.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_normalizer.h"

namespace turbine::model {

class GgufFile;

// A token matched verbatim in the text before BPE (tokenizers' AddedToken).
struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;  // matched only when parse_special; skipped by skip_special_tokens
  bool lstrip = false;   // swallows the whitespace on its left
  bool rstrip = false;   // swallows the whitespace on its right
};

class Tokenizer {
 public:
  // tokenizer.json (+ optional tokenizer_config.json for add_bos_token / add_eos_token and the
  // bos / eos token names). Errors name the file and the field.
  static Result<std::unique_ptr<Tokenizer>> fromHfJson(
      const std::string& tokenizer_json_path,
      const std::optional<std::string>& tokenizer_config_path = std::nullopt);
  // GGUF metadata: tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, *_token_id,
  // add_bos_token, add_eos_token, add_space_prefix}.
  static Result<std::unique_ptr<Tokenizer>> fromGguf(const GgufFile& gguf);
  // A Hugging Face folder (tokenizer.json [+ tokenizer_config.json]), a .gguf file, or a folder
  // holding exactly one .gguf file.
  static Result<std::unique_ptr<Tokenizer>> load(const std::string& model_path);

  // add_special_tokens: add the BOS / EOS (or template tokens) the model adds around a sequence.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens,
                              bool parse_special = true) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The vocabulary text of `id` (byte-level tokens in their mapped alphabet, "▁" in SentencePiece
  // ones); empty for an id out of range.
  std::string_view tokenText(int32_t id) const;
  // The raw bytes `id` stands for in decoded text (possibly a partial UTF-8 character).
  std::string_view tokenBytes(int32_t id) const;
  std::optional<int32_t> tokenId(std::string_view text) const;
  int32_t vocabSize() const { return static_cast<int32_t>(texts_.size()); }
  int32_t bos() const { return bos_id_; }  // -1 when the model has none
  int32_t eos() const { return eos_id_; }  // -1 when the model has none
  bool addsBos() const { return !prefix_ids_.empty(); }
  bool isSpecial(int32_t id) const;
  // SentencePiece-style vocabulary: decoding drops the leading space of the first token.
  bool stripsLeadingSpace() const { return strip_leading_space_; }
  const std::vector<AddedToken>& addedTokens() const { return added_; }

 private:
  friend class TokenizerBuilder;
  Tokenizer() = default;

  // Appends the ids of one segment of plain text (no added tokens in it).
  void encodeSegment(std::string_view text, bool first_segment, std::vector<int32_t>* out) const;
  // Finds the leftmost-longest added token in text[from..); false when none.
  bool findAdded(std::string_view text, size_t from, bool parse_special, size_t* begin, size_t* end,
                 const AddedToken** tok) const;

  std::vector<std::string> texts_;  // id -> vocabulary text
  std::vector<std::string> bytes_;  // id -> decoded bytes
  std::vector<uint8_t> special_;    // id -> 1 if special
  TokenMap text_to_id_;
  std::vector<AddedToken> added_;                     // sorted by content length, longest first
  std::vector<std::vector<uint32_t>> added_by_byte_;  // first byte -> indices into added_
  std::unique_ptr<BpeModel> bpe_;
  Normalizer normalizer_;
  PreTokenizer pre_;
  std::vector<int32_t> prefix_ids_;  // added by add_special_tokens (e.g. BOS)
  std::vector<int32_t> suffix_ids_;  // e.g. EOS
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool strip_leading_space_ = false;
};

// Turns a stream of token ids into text, one call per token, emitting only complete UTF-8
// characters: bytes of a character split across tokens (<0xE2><0x82><0xAC>, or byte-level
// pieces of an emoji) are held back until the character is complete. Ill-formed bytes become
// U+FFFD once it is certain they cannot complete. Not thread-safe (one per sequence).
class IncrementalDecoder {
 public:
  // at_sequence_start: the first token starts the text, so a SentencePiece vocabulary's leading
  // space is dropped (as decode() does); false when continuing after a prompt.
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false,
                              bool at_sequence_start = true);

  // The text completed by `id` (often empty while a character is incomplete).
  std::string step(int32_t id);
  // Whatever is still held back, with incomplete bytes as U+FFFD; call at end of sequence.
  std::string flush();
  // Bytes held back waiting for the rest of a character.
  size_t pendingBytes() const { return pending_.size(); }

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool strip_next_space_;
  std::string pending_;
};

}  // namespace turbine::model
