// Tokenizer from a Hugging Face tokenizer.json (+ tokenizer_config.json).
// Reads: model (BPE), added_tokens, normalizer, pre_tokenizer, decoder, post_processor.
// Components that change tokenization and are not implemented give Unimplemented naming them,
// rather than a tokenizer that silently differs from the reference.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/tokenizer.h"
#include "model/tokenizer_builder.h"

namespace turbine::model {
namespace {

using json = nlohmann::json;

Result<json> readJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalidArgument(path + ": not valid JSON");
  return j;
}

std::string str(const json& j, const char* key, std::string dflt = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
}
bool boolean(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

// A `pattern` object: {"String": "..."} or {"Regex": "..."}.
Result<std::pair<std::string, bool>> readPattern(const json& j, const std::string& where) {
  auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) return invalidArgument(where + ": missing 'pattern'");
  if (it->contains("String")) return std::make_pair((*it)["String"].get<std::string>(), true);
  if (it->contains("Regex")) return std::make_pair((*it)["Regex"].get<std::string>(), false);
  return invalidArgument(where + ": 'pattern' is neither String nor Regex");
}

Status addNormalizer(const json& j, const std::string& where, Normalizer* n) {
  if (j.is_null()) return Status::ok();
  const std::string type = str(j, "type");
  using K = NormalizerStep::Kind;
  if (type == "Sequence") {
    for (const json& s : j.value("normalizers", json::array())) {
      TURBINE_RETURN_IF_ERROR(addNormalizer(s, where, n));
    }
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
    n->append(Normalizer::unicodeForm(type == "NFC"    ? K::kNfc
                                      : type == "NFKC" ? K::kNfkc
                                      : type == "NFD"  ? K::kNfd
                                                       : K::kNfkd));
  } else if (type == "Prepend") {
    n->append(Normalizer::prepend(str(j, "prepend")));
  } else if (type == "Replace") {
    TURBINE_ASSIGN_OR_RETURN(auto pat, readPattern(j, where + ".Replace"));
    auto step = Normalizer::replace(pat.first, str(j, "content"), pat.second);
    if (!step.isOk()) return step.status().withPrefix(where);
    n->append(std::move(step).value());
  } else if (type == "Lowercase") {
    NormalizerStep s;
    s.kind = K::kLowercase;
    n->append(s);
  } else if (type == "Strip") {
    NormalizerStep s;
    s.kind = K::kStrip;
    s.strip_left = boolean(j, "strip_left", true);
    s.strip_right = boolean(j, "strip_right", true);
    n->append(s);
  } else {
    return unimplemented(where + ": normalizer type '" + type + "' is not supported");
  }
  return Status::ok();
}

Status addPreTokenizer(const json& j, const std::string& where, PreTokenizer* pre) {
  if (j.is_null()) return Status::ok();
  const std::string type = str(j, "type");
  auto push = [&](Result<PreTokenizerStep> r) -> Status {
    if (!r.isOk()) return r.status().withPrefix(where);
    pre->append(std::move(r).value());
    return Status::ok();
  };
  if (type == "Sequence") {
    for (const json& s : j.value("pretokenizers", json::array())) {
      TURBINE_RETURN_IF_ERROR(addPreTokenizer(s, where, pre));
    }
    return Status::ok();
  }
  if (type == "ByteLevel") {
    return push(PreTokenizer::byteLevelStep(boolean(j, "add_prefix_space", false),
                                            boolean(j, "use_regex", true)));
  }
  if (type == "Split") {
    TURBINE_ASSIGN_OR_RETURN(auto pat, readPattern(j, where + ".Split"));
    TURBINE_ASSIGN_OR_RETURN(SplitBehavior b, parseSplitBehavior(str(j, "behavior", "Isolated")));
    return push(PreTokenizer::splitStep(pat.first, b, boolean(j, "invert", false), pat.second));
  }
  if (type == "Digits")
    return push(PreTokenizer::digitsStep(boolean(j, "individual_digits", false)));
  if (type == "Punctuation") {
    TURBINE_ASSIGN_OR_RETURN(SplitBehavior b, parseSplitBehavior(str(j, "behavior", "Isolated")));
    return push(PreTokenizer::punctuationStep(b));
  }
  if (type == "Whitespace") {
    return push(PreTokenizer::splitStep("\\w+|[^\\w\\s]+", SplitBehavior::kRemoved, true));
  }
  if (type == "WhitespaceSplit") {
    return push(PreTokenizer::splitStep("\\s+", SplitBehavior::kRemoved));
  }
  if (type == "Metaspace") {
    PreTokenizerStep s;
    s.kind = PreTokenizerStep::Kind::kMetaspace;
    s.replacement = str(j, "replacement", "\xE2\x96\x81");
    const std::string scheme =
        str(j, "prepend_scheme", boolean(j, "add_prefix_space", true) ? "always" : "never");
    s.prepend = scheme == "first"   ? PreTokenizerStep::Prepend::kFirst
                : scheme == "never" ? PreTokenizerStep::Prepend::kNever
                                    : PreTokenizerStep::Prepend::kAlways;
    s.split = boolean(j, "split", true);
    pre->append(std::move(s));
    return Status::ok();
  }
  return unimplemented(where + ": pre_tokenizer type '" + type + "' is not supported");
}

// Decoder: picks the byte mapping and whether the leading space of the text is dropped.
void readDecoder(const json& j, TokenizerParts* p, bool* byte_level, bool* spm) {
  if (j.is_null()) return;
  const std::string type = str(j, "type");
  if (type == "Sequence") {
    for (const json& d : j.value("decoders", json::array())) readDecoder(d, p, byte_level, spm);
  } else if (type == "ByteLevel") {
    *byte_level = true;
  } else if (type == "Metaspace") {
    *spm = true;
    const std::string scheme =
        str(j, "prepend_scheme", boolean(j, "add_prefix_space", true) ? "always" : "never");
    if (scheme != "never") p->strip_leading_space = true;
  } else if (type == "ByteFallback" || type == "Replace") {
    *spm = true;
  } else if (type == "Strip") {
    if (j.value("start", 0) >= 1) p->strip_leading_space = true;
  }
}

// post_processor: the tokens added around a single sequence.
void readPostProcessor(const json& j, TokenizerParts* p, const TokenMap& ids) {
  if (j.is_null()) return;
  const std::string type = str(j, "type");
  if (type == "Sequence") {
    for (const json& q : j.value("processors", json::array())) readPostProcessor(q, p, ids);
  } else if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    for (const json& item : j.value("single", json::array())) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = str(item["SpecialToken"], "id");
        const json& st = j["special_tokens"];
        std::vector<int32_t> tok_ids;
        if (st.contains(name) && st[name].contains("ids")) {
          tok_ids = st[name]["ids"].get<std::vector<int32_t>>();
        } else if (auto it = ids.find(name); it != ids.end()) {
          tok_ids.push_back(it->second);
        }
        auto& dst = seen_sequence ? p->suffix_ids : p->prefix_ids;
        dst.insert(dst.end(), tok_ids.begin(), tok_ids.end());
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    if (j.contains("cls") && j["cls"].size() == 2)
      p->prefix_ids.push_back(j["cls"][1].get<int32_t>());
    if (j.contains("sep") && j["sep"].size() == 2)
      p->suffix_ids.push_back(j["sep"][1].get<int32_t>());
  }
}

Status readModel(const json& model, const std::string& path, TokenizerParts* p) {
  const std::string type = str(model, "type", "BPE");
  if (type != "BPE")
    return unimplemented(path + ": model type '" + type + "' is not supported (BPE only)");
  if (!str(model, "continuing_subword_prefix").empty() ||
      !str(model, "end_of_word_suffix").empty()) {
    return unimplemented(
        path + ": model.continuing_subword_prefix / end_of_word_suffix are not supported");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return invalidArgument(path + ": model.vocab is missing or not an object");
  }
  for (const auto& [text, idj] : model["vocab"].items()) {
    const int64_t id = idj.get<int64_t>();
    if (id < 0 || id > (1 << 24))
      return invalidArgument(path + ": model.vocab['" + text + "'] has bad id");
    if (static_cast<size_t>(id) >= p->texts.size()) p->texts.resize(id + 1);
    p->texts[id] = text;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (const json& m : model.value("merges", json::array())) {
    if (m.is_array() && m.size() == 2) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos)
        return invalidArgument(path + ": model.merges entry '" + s + "' has no space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      return invalidArgument(path + ": model.merges entry is neither a string nor a pair");
    }
  }
  BpeOptions opt;
  opt.mode = BpeOptions::Mode::kRank;
  opt.ignore_merges = boolean(model, "ignore_merges", false);
  opt.byte_fallback = boolean(model, "byte_fallback", false);
  opt.fuse_unk = boolean(model, "fuse_unk", false);
  const std::string unk = str(model, "unk_token");
  if (!unk.empty() && model["vocab"].contains(unk)) opt.unk_id = model["vocab"][unk].get<int32_t>();
  auto bpe = BpeModel::create(p->texts, opt, merges, {}, {});
  if (!bpe.isOk()) return bpe.status().withPrefix(path);
  p->bpe = std::make_unique<BpeModel>(std::move(bpe).value());
  return Status::ok();
}

// tokenizer_config.json: "bos_token": "<s>" or {"content": "<s>", ...}.
std::string configToken(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return str(*it, "content");
  return "";
}

void applyConfig(const json& cfg, const TokenMap& ids, TokenizerParts* p) {
  auto idOf = [&](const std::string& name) -> int32_t {
    auto it = ids.find(name);
    return name.empty() || it == ids.end() ? -1 : it->second;
  };
  if (int32_t id = idOf(configToken(cfg, "bos_token")); id >= 0) p->bos_id = id;
  if (int32_t id = idOf(configToken(cfg, "eos_token")); id >= 0) p->eos_id = id;
  auto setFlag = [&](const char* key, int32_t id, std::vector<int32_t>* dst, bool front) {
    auto it = cfg.find(key);
    if (it == cfg.end() || !it->is_boolean() || id < 0) return;
    std::erase(*dst, id);
    if (it->get<bool>()) dst->insert(front ? dst->begin() : dst->end(), id);
  };
  setFlag("add_bos_token", p->bos_id, &p->prefix_ids, true);
  setFlag("add_eos_token", p->eos_id, &p->suffix_ids, false);
}

Status parseTokenizerJson(const json& j, const std::string& path, TokenizerParts* p) {
  if (!j.is_object() || !j.contains("model")) return invalidArgument(path + ": no 'model' object");
  TURBINE_RETURN_IF_ERROR(readModel(j["model"], path, p));
  for (const json& a : j.value("added_tokens", json::array())) {
    AddedToken t;
    t.id = a.value("id", -1);
    t.content = str(a, "content");
    t.special = boolean(a, "special", false);
    t.lstrip = boolean(a, "lstrip", false);
    t.rstrip = boolean(a, "rstrip", false);
    if (t.id < 0 || t.id > (1 << 24))
      return invalidArgument(path + ": added token '" + t.content + "' has a bad id");
    if (static_cast<size_t>(t.id) >= p->texts.size()) p->texts.resize(t.id + 1);
    if (p->texts[t.id].empty()) p->texts[t.id] = t.content;
    p->added.push_back(std::move(t));
  }
  TURBINE_RETURN_IF_ERROR(
      addNormalizer(j.value("normalizer", json()), path + ": normalizer", &p->normalizer));
  TURBINE_RETURN_IF_ERROR(
      addPreTokenizer(j.value("pre_tokenizer", json()), path + ": pre_tokenizer", &p->pre));
  bool byte_level = false, spm = false;
  readDecoder(j.value("decoder", json()), p, &byte_level, &spm);
  if (!byte_level && !spm) byte_level = p->pre.hasByteLevel();
  p->decode = byte_level ? TokenizerParts::DecodeMode::kByteLevel
              : spm      ? TokenizerParts::DecodeMode::kSentencePiece
                         : TokenizerParts::DecodeMode::kRaw;
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::fromHfJson(
    const std::string& tokenizer_json_path,
    const std::optional<std::string>& tokenizer_config_path) {
  TURBINE_ASSIGN_OR_RETURN(json j, readJson(tokenizer_json_path));
  TokenizerParts p;
  p.source = tokenizer_json_path;
  try {
    TURBINE_RETURN_IF_ERROR(parseTokenizerJson(j, tokenizer_json_path, &p));
    TokenMap ids;
    for (size_t i = 0; i < p.texts.size(); ++i) {
      if (!p.texts[i].empty()) ids.emplace(p.texts[i], static_cast<int32_t>(i));
    }
    for (const AddedToken& a : p.added) ids[a.content] = a.id;
    readPostProcessor(j.value("post_processor", json()), &p, ids);
    if (!p.prefix_ids.empty()) p.bos_id = p.prefix_ids.front();
    if (!p.suffix_ids.empty()) p.eos_id = p.suffix_ids.back();
    if (tokenizer_config_path) {
      TURBINE_ASSIGN_OR_RETURN(json cfg, readJson(*tokenizer_config_path));
      if (cfg.is_object()) applyConfig(cfg, ids, &p);
    }
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    return invalidArgument(tokenizer_json_path + ": " + e.what());
  }
  return TokenizerBuilder::build(std::move(p));
}

}  // namespace turbine::model
