// Tokenizer from GGUF metadata (keys of ggml's gguf.md "Tokenizer" section).
// tokenizer.ggml.model "gpt2": byte-level BPE, merges by rank, pre-tokenizer named by
// tokenizer.ggml.pre. "llama": SentencePiece BPE, merges by score, byte fallback.
// token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. Control and
// unknown tokens are special added tokens; user-defined ones are non-special added tokens.
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/tokenizer_builder.h"

namespace turbine::model {
namespace {

constexpr int64_t kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeUserDefined = 4;

std::optional<int32_t> optionalId(const GgufFile& g, std::string_view key, size_t n) {
  if (g.find(key) == nullptr) return std::nullopt;
  auto v = g.getInt(key);
  if (!v.isOk() || *v < 0 || static_cast<size_t>(*v) >= n) return std::nullopt;
  return static_cast<int32_t>(*v);
}

bool optionalBool(const GgufFile& g, std::string_view key, bool dflt) {
  if (g.find(key) == nullptr) return dflt;
  auto v = g.getBool(key);
  return v.isOk() ? *v : dflt;
}

Result<std::vector<std::pair<std::string, std::string>>> readMerges(const GgufFile& g) {
  TURBINE_ASSIGN_OR_RETURN(std::vector<std::string> raw, g.getStringArray("tokenizer.ggml.merges"));
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const size_t sp = raw[i].find(' ', 1);
    if (sp == std::string::npos) {
      return invalidArgument(g.path() + ": tokenizer.ggml.merges[" + std::to_string(i) + "] '" +
                             raw[i] + "' is not two tokens separated by a space");
    }
    merges.emplace_back(raw[i].substr(0, sp), raw[i].substr(sp + 1));
  }
  return merges;
}

Status configureGpt2(const GgufFile& g, const std::vector<int64_t>& types, TokenizerParts* p) {
  std::string pre_name;
  if (g.find("tokenizer.ggml.pre") != nullptr) {
    TURBINE_ASSIGN_OR_RETURN(pre_name, g.getString("tokenizer.ggml.pre"));
  }
  bool ignore_merges = false, nfc = false;
  auto pre = PreTokenizer::forGgufPre(pre_name, &ignore_merges, &nfc);
  if (!pre.isOk()) return pre.status().withPrefix(g.path());
  p->pre = std::move(pre).value();
  if (nfc) p->normalizer.append(Normalizer::unicodeForm(NormalizerStep::Kind::kNfc));
  auto merges = readMerges(g);
  if (!merges.isOk()) return merges.status();
  BpeOptions opt;
  opt.mode = BpeOptions::Mode::kRank;
  opt.ignore_merges = ignore_merges;
  auto bpe = BpeModel::create(p->texts, opt, *merges, {}, {});
  if (!bpe.isOk()) return bpe.status().withPrefix(g.path());
  p->bpe = std::make_unique<BpeModel>(std::move(bpe).value());
  p->decode = TokenizerParts::DecodeMode::kByteLevel;
  const bool llama3 = ignore_merges;  // the Llama 3 family adds BOS by default
  if (optionalBool(g, "tokenizer.ggml.add_bos_token", llama3) && p->bos_id >= 0) {
    p->prefix_ids.push_back(p->bos_id);
  }
  (void)types;
  return Status::ok();
}

Status configureLlama(const GgufFile& g, const std::vector<int64_t>& types, TokenizerParts* p) {
  if (g.find("tokenizer.ggml.scores") == nullptr) {
    return invalidArgument(g.path() + ": tokenizer.ggml.scores is required for a 'llama' vocab");
  }
  TURBINE_ASSIGN_OR_RETURN(std::vector<double> scores_d, g.getFloatArray("tokenizer.ggml.scores"));
  if (scores_d.size() != p->texts.size()) {
    return invalidArgument(g.path() + ": tokenizer.ggml.scores has " +
                           std::to_string(scores_d.size()) + " entries for " +
                           std::to_string(p->texts.size()) + " tokens");
  }
  std::vector<float> scores(scores_d.begin(), scores_d.end());
  std::vector<bool> mergeable(p->texts.size(), true);
  for (size_t i = 0; i < types.size() && i < mergeable.size(); ++i) {
    mergeable[i] = types[i] == kTypeNormal;
  }
  BpeOptions opt;
  opt.mode = BpeOptions::Mode::kScore;
  opt.byte_fallback = true;
  auto unk = optionalId(g, "tokenizer.ggml.unknown_token_id", p->texts.size());
  opt.unk_id = unk.value_or(-1);
  auto bpe = BpeModel::create(p->texts, opt, {}, std::move(scores), std::move(mergeable));
  if (!bpe.isOk()) return bpe.status().withPrefix(g.path());
  p->bpe = std::make_unique<BpeModel>(std::move(bpe).value());
  const bool dummy_prefix = optionalBool(g, "tokenizer.ggml.add_space_prefix", true);
  if (dummy_prefix) p->normalizer.append(Normalizer::prepend("\xE2\x96\x81"));
  TURBINE_ASSIGN_OR_RETURN(NormalizerStep rep, Normalizer::replace(" ", "\xE2\x96\x81", true));
  p->normalizer.append(std::move(rep));
  p->decode = TokenizerParts::DecodeMode::kSentencePiece;
  p->strip_leading_space = dummy_prefix;
  if (optionalBool(g, "tokenizer.ggml.add_bos_token", true) && p->bos_id >= 0) {
    p->prefix_ids.push_back(p->bos_id);
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::fromGguf(const GgufFile& g) {
  TokenizerParts p;
  p.source = g.path();
  TURBINE_ASSIGN_OR_RETURN(std::string model, g.getString("tokenizer.ggml.model"));
  TURBINE_ASSIGN_OR_RETURN(p.texts, g.getStringArray("tokenizer.ggml.tokens"));
  if (p.texts.empty()) return invalidArgument(g.path() + ": tokenizer.ggml.tokens is empty");
  std::vector<int64_t> types;
  if (g.find("tokenizer.ggml.token_type") != nullptr) {
    TURBINE_ASSIGN_OR_RETURN(types, g.getIntArray("tokenizer.ggml.token_type"));
    if (types.size() != p.texts.size()) {
      return invalidArgument(g.path() + ": tokenizer.ggml.token_type has " +
                             std::to_string(types.size()) + " entries for " +
                             std::to_string(p.texts.size()) + " tokens");
    }
  }
  const size_t n = p.texts.size();
  p.bos_id = optionalId(g, "tokenizer.ggml.bos_token_id", n).value_or(-1);
  p.eos_id = optionalId(g, "tokenizer.ggml.eos_token_id", n).value_or(-1);
  for (size_t i = 0; i < types.size(); ++i) {
    const int64_t t = types[i];
    if (t != kTypeControl && t != kTypeUnknown && t != kTypeUserDefined) continue;
    AddedToken a;
    a.id = static_cast<int32_t>(i);
    a.content = p.texts[i];
    a.special = t != kTypeUserDefined;
    p.added.push_back(std::move(a));
  }
  Status st;
  if (model == "gpt2") {
    st = configureGpt2(g, types, &p);
  } else if (model == "llama") {
    st = configureLlama(g, types, &p);
  } else {
    return unimplemented(g.path() + ": tokenizer.ggml.model '" + model +
                         "' is not supported (supported: gpt2, llama)");
  }
  if (!st.isOk()) return st;
  if (optionalBool(g, "tokenizer.ggml.add_eos_token", false) && p.eos_id >= 0) {
    p.suffix_ids.push_back(p.eos_id);
  }
  return TokenizerBuilder::build(std::move(p));
}

}  // namespace turbine::model
