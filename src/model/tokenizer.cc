// Tokenizer: added-token matching, the encode / decode pipelines and the incremental decoder.
#include "model/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "model/gguf.h"
#include "model/tokenizer_builder.h"
#include "model/unicode.h"

namespace turbine::model {
namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// "<0xNN>" -> NN, or -1.
int byteTokenValue(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string decodeSentencePiece(std::string_view text) {
  const int b = byteTokenValue(text);
  if (b >= 0) return std::string(1, static_cast<char>(b));
  std::string out;
  out.reserve(text.size());
  static constexpr std::string_view kMeta = "\xE2\x96\x81";  // U+2581 '▁'
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kMeta.size(), kMeta) == 0) {
      out.push_back(' ');
      i += kMeta.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- building

Result<std::unique_ptr<Tokenizer>> TokenizerBuilder::build(TokenizerParts p) {
  if (!p.bpe) return internalError(p.source + ": tokenizer has no model");
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const size_t n = p.texts.size();
  t->texts_ = std::move(p.texts);
  t->bytes_.resize(n);
  t->special_.assign(n, 0);
  t->text_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = t->texts_[i];
    if (!text.empty()) t->text_to_id_.emplace(text, static_cast<int32_t>(i));
    switch (p.decode) {
      case TokenizerParts::DecodeMode::kByteLevel:
        t->bytes_[i] = unicode::fromByteLevel(text);
        break;
      case TokenizerParts::DecodeMode::kSentencePiece:
        t->bytes_[i] = decodeSentencePiece(text);
        break;
      case TokenizerParts::DecodeMode::kRaw:
        t->bytes_[i] = text;
        break;
    }
  }
  for (const AddedToken& a : p.added) {
    if (a.id < 0 || static_cast<size_t>(a.id) >= n) {
      return invalidArgument(p.source + ": added token '" + a.content + "' has id " +
                             std::to_string(a.id) + " outside the vocabulary");
    }
    if (a.content.empty()) continue;
    t->bytes_[a.id] = a.content;  // added tokens decode to their content verbatim
    t->special_[a.id] = a.special ? 1 : 0;
    t->text_to_id_[a.content] = a.id;
    t->added_.push_back(a);
  }
  std::stable_sort(
      t->added_.begin(), t->added_.end(),
      [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  t->added_by_byte_.assign(256, {});
  for (size_t i = 0; i < t->added_.size(); ++i) {
    t->added_by_byte_[static_cast<uint8_t>(t->added_[i].content[0])].push_back(
        static_cast<uint32_t>(i));
  }
  t->bpe_ = std::move(p.bpe);
  t->normalizer_ = std::move(p.normalizer);
  t->pre_ = std::move(p.pre);
  t->prefix_ids_ = std::move(p.prefix_ids);
  t->suffix_ids_ = std::move(p.suffix_ids);
  t->bos_id_ = p.bos_id;
  t->eos_id_ = p.eos_id;
  t->strip_leading_space_ = p.strip_leading_space;
  for (int32_t id : t->prefix_ids_) {
    if (id < 0 || static_cast<size_t>(id) >= n)
      return invalidArgument(p.source + ": BOS/prefix token id out of range");
  }
  for (int32_t id : t->suffix_ids_) {
    if (id < 0 || static_cast<size_t>(id) >= n)
      return invalidArgument(p.source + ": EOS/suffix token id out of range");
  }
  return t;
}

// ---------------------------------------------------------------- loading

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(model_path, ec)) {
    if (model_path.ends_with(".gguf")) {
      TURBINE_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(model_path));
      return fromGguf(gguf);
    }
    if (model_path.ends_with(".json")) return fromHfJson(model_path);
    return invalidArgument(model_path + ": not a tokenizer.json, a .gguf file or a model folder");
  }
  if (!fs::is_directory(model_path, ec)) return notFound(model_path + ": no such file or folder");
  const fs::path dir(model_path);
  if (fs::is_regular_file(dir / "tokenizer.json", ec)) {
    std::optional<std::string> config;
    if (fs::is_regular_file(dir / "tokenizer_config.json", ec)) {
      config = (dir / "tokenizer_config.json").string();
    }
    return fromHfJson((dir / "tokenizer.json").string(), config);
  }
  std::vector<std::string> ggufs;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().extension() == ".gguf") ggufs.push_back(e.path().string());
  }
  if (ggufs.size() == 1) {
    TURBINE_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(ggufs[0]));
    return fromGguf(gguf);
  }
  if (ggufs.size() > 1) {
    return invalidArgument(model_path + ": holds " + std::to_string(ggufs.size()) +
                           " .gguf files; name one");
  }
  return notFound(model_path + ": no tokenizer.json and no .gguf file in the folder");
}

// ---------------------------------------------------------------- encoding

bool Tokenizer::findAdded(std::string_view text, size_t from, bool parse_special, size_t* begin,
                          size_t* end, const AddedToken** tok) const {
  if (added_.empty()) return false;
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (uint32_t idx : added_by_byte_[static_cast<uint8_t>(text[pos])]) {
      const AddedToken& a = added_[idx];
      if (a.special && !parse_special) continue;
      if (text.compare(pos, a.content.size(), a.content) != 0) continue;
      size_t b = pos, e = pos + a.content.size();
      if (a.lstrip) {
        while (b > from && isSpace(text[b - 1])) --b;
      }
      if (a.rstrip) {
        while (e < text.size() && isSpace(text[e])) ++e;
      }
      *begin = b;
      *end = e;
      *tok = &a;
      return true;
    }
  }
  return false;
}

void Tokenizer::encodeSegment(std::string_view text, bool first_segment,
                              std::vector<int32_t>* out) const {
  if (text.empty()) return;
  const std::string normalized = normalizer_.apply(text);
  if (pre_.empty()) {
    bpe_->encodePiece(normalized, out);
    return;
  }
  for (const std::string& piece : pre_.split(normalized, first_segment)) {
    bpe_->encodePiece(piece, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       bool parse_special) const {
  const std::string clean = unicode::sanitizeUtf8(text);
  std::vector<int32_t> out;
  out.reserve(clean.size() / 3 + 4);
  if (add_special_tokens) out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());
  size_t pos = 0;
  while (pos < clean.size()) {
    size_t b = 0, e = 0;
    const AddedToken* tok = nullptr;
    if (!findAdded(clean, pos, parse_special, &b, &e, &tok)) {
      encodeSegment(std::string_view(clean).substr(pos), pos == 0, &out);
      break;
    }
    encodeSegment(std::string_view(clean).substr(pos, b - pos), pos == 0, &out);
    out.push_back(tok->id);
    pos = e;
  }
  if (add_special_tokens) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
  return out;
}

// ---------------------------------------------------------------- decoding and lookups

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string raw;
  bool strip = strip_leading_space_;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocabSize()) continue;
    if (skip_special_tokens && special_[id]) continue;
    std::string_view b = bytes_[id];
    if (strip && !b.empty()) {
      if (b[0] == ' ') b.remove_prefix(1);
      strip = false;
    }
    raw.append(b);
  }
  return unicode::sanitizeUtf8(raw);
}

std::string_view Tokenizer::tokenText(int32_t id) const {
  return id >= 0 && id < vocabSize() ? std::string_view(texts_[id]) : std::string_view();
}

std::string_view Tokenizer::tokenBytes(int32_t id) const {
  return id >= 0 && id < vocabSize() ? std::string_view(bytes_[id]) : std::string_view();
}

std::optional<int32_t> Tokenizer::tokenId(std::string_view text) const {
  auto it = text_to_id_.find(text);
  if (it == text_to_id_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::isSpecial(int32_t id) const {
  return id >= 0 && id < vocabSize() && special_[id] != 0;
}

// ---------------------------------------------------------------- IncrementalDecoder

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens,
                                       bool at_sequence_start)
    : tok_(tokenizer),
      skip_special_(skip_special_tokens),
      strip_next_space_(at_sequence_start && tokenizer.stripsLeadingSpace()) {}

std::string IncrementalDecoder::step(int32_t id) {
  if (id < 0 || id >= tok_.vocabSize()) return {};
  if (skip_special_ && tok_.isSpecial(id)) return {};
  std::string_view b = tok_.tokenBytes(id);
  if (strip_next_space_ && !b.empty()) {
    if (b[0] == ' ') b.remove_prefix(1);
    strip_next_space_ = false;
  }
  pending_.append(b);
  const size_t n = unicode::completePrefixLength(pending_);
  if (n == 0) return {};
  std::string out = unicode::sanitizeUtf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out = unicode::sanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace turbine::model
