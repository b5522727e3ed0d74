// Model loading: path resolution, Hugging Face folders, validation shared with the GGUF loader
// (gguf_model_loader.cc), page prefaulting with progress, and the weights' placement: mapped
// file pages, or one copy into anonymous memory backed by transparent huge pages (see "weight
// placement" below).
#include "model/model_loader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "model/hf_config.h"
#include "model/model_loader_internal.h"
#include "model/safetensors.h"

namespace turbine::model {
namespace fs = std::filesystem;

std::string shapeToString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

Status checkShape(const std::string& file, const TensorView& t,
                  const std::vector<int64_t>& expected) {
  if (t.shape != expected) {
    return invalidArgument(file + ": tensor '" + t.name + "': shape " + shapeToString(t.shape) +
                           ", expected " + shapeToString(expected));
  }
  return Status::ok();
}

ExpectedShapes expectedShapes(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = int64_t{c.num_heads} * c.head_dim,
                kv = int64_t{c.num_kv_heads} * c.head_dim, f = c.intermediate_size;
  ExpectedShapes e;
  e.embed = {c.vocab_size, h};
  e.norm = {h};
  e.wq = {q, h};
  e.wk = {kv, h};
  e.wv = {kv, h};
  e.wo = {h, q};
  e.bq = {q};
  e.bk = {kv};
  e.bv = {kv};
  e.gate = {f, h};
  e.up = {f, h};
  e.down = {h, f};
  return e;
}

void prefault(const ModelWeights& w, const std::function<void(float)>& progress) {
  std::vector<const TensorView*> all = {&w.tok_embeddings, &w.final_norm};
  if (w.lm_head.data != w.tok_embeddings.data) all.push_back(&w.lm_head);
  for (const auto& l : w.layers) {
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.bq, &l.bk, &l.bv, &l.wo,
                                &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      if (t->present()) all.push_back(t);
    }
  }
  size_t total = 0, done = 0;
  for (const TensorView* t : all) total += t->nbytes;
  constexpr size_t kPage = 4096;
  size_t next_report = 0;
  volatile uint8_t sink = 0;
  for (const TensorView* t : all) {
    const auto* p = static_cast<const uint8_t*>(t->data);
    uint8_t acc = 0;
    for (size_t i = 0; i < t->nbytes; i += kPage) acc ^= p[i];
    sink = sink ^ acc;
    done += t->nbytes;
    if (progress && (done >= next_report || done == total)) {
      progress(total ? static_cast<float>(static_cast<double>(done) / total) : 1.0f);
      next_report = done + total / 100;
    }
  }
  if (progress) progress(1.0f);
}

// ---- weight placement -------------------------------------------------------------------------
// Batch-1 decode streams every weight once per token, so it runs at the rate a read stream over
// the weights gets. Over mapped file pages (4 KiB: ext4's page cache is not PMD-mapped) that
// stream takes a TLB miss every 4 KiB and the hardware prefetchers stop at each page boundary;
// over 2 MiB pages it does not. Measured on the 2-core Zen 4 KVM guest (2 threads, 512 MiB,
// interleaved rounds): read stream 17-19 GB/s over the file map or 4 KiB anonymous pages,
// 25-26 GB/s over transparent huge pages. So the weights are copied once, at load, into one
// anonymous region advised MADV_HUGEPAGE, unless that would crowd memory.
// TURBINE_WEIGHTS (read once per load) chooses: "mmap" (always map), "copy" (always copy), or
// "auto"/unset: copy when the weights take at most half of MemAvailable and transparent huge
// pages are not disabled, else map (a model near the size of RAM stays a page-cache map).
namespace {

enum class Placement { kMmap, kCopy };

// Bytes of MemAvailable in /proc/meminfo; 0 when unknown.
size_t memAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    in.ignore(256, '\n');
  }
  return 0;
}

bool transparentHugePagesEnabled() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return false;
  return line.find("[never]") == std::string::npos;
}

// TURBINE_WEIGHTS, or InvalidArgument naming it; `forced` is false for auto.
Result<Placement> choosePlacement(size_t weight_bytes, bool* forced) {
  const char* env = std::getenv("TURBINE_WEIGHTS");
  const std::string mode = env != nullptr ? env : "";
  *forced = mode == "mmap" || mode == "copy";
  if (mode == "mmap") return Placement::kMmap;
  if (mode == "copy") return Placement::kCopy;
  if (!mode.empty() && mode != "auto") {
    return invalidArgument("TURBINE_WEIGHTS=" + mode + ": expected mmap, copy or auto");
  }
  // A tiny model gains nothing from 2 MiB pages.
  constexpr size_t kMinCopyBytes = size_t{4} << 20;
  if (weight_bytes < kMinCopyBytes || !transparentHugePagesEnabled()) return Placement::kMmap;
  return weight_bytes <= memAvailable() / 2 ? Placement::kCopy : Placement::kMmap;
}

// Every tensor view of `w` (absent ones included; tied lm_head too).
std::vector<TensorView*> allViews(ModelWeights& w) {
  std::vector<TensorView*> all = {&w.tok_embeddings, &w.final_norm, &w.lm_head};
  for (auto& l : w.layers) {
    for (TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.bq, &l.bk, &l.bv, &l.wo,
                          &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      all.push_back(t);
    }
  }
  return all;
}

// Copies the distinct tensors of `w` into one anonymous huge-page region (64-byte aligned each,
// views sharing data keep sharing it) and points the views there; the file maps are released.
Status copyToHugePages(ModelWeights& w, const std::function<void(float)>& progress) {
  constexpr size_t kAlign = 64;
  std::map<const void*, size_t> offset_of;  // source data -> offset in the region
  std::vector<const TensorView*> sources;
  size_t total = 0;
  std::vector<TensorView*> views = allViews(w);
  for (TensorView* t : views) {
    if (!t->present() || offset_of.count(t->data) != 0) continue;
    offset_of[t->data] = total;
    sources.push_back(t);
    total += (t->nbytes + kAlign - 1) / kAlign * kAlign;
  }
  const std::string name = w.files.empty() ? "weights" : w.files.front()->path();
  auto fill = [&](uint8_t* dst) {
    size_t done = 0, next_report = 0;
    for (const TensorView* t : sources) {
      std::memcpy(dst + offset_of[t->data], t->data, t->nbytes);
      done += t->nbytes;
      if (progress && done >= next_report) {
        progress(static_cast<float>(static_cast<double>(done) / static_cast<double>(total)));
        next_report = done + total / 100;
      }
    }
    return Status::ok();
  };
  TURBINE_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> region,
                           MappedFile::anonymousCopy(name, total, fill));
  for (TensorView* t : views) {
    if (t->present()) t->data = region->data() + offset_of.at(t->data);
  }
  w.files = {region};
  if (progress) progress(1.0f);
  return Status::ok();
}

}  // namespace

Result<std::string> resolveModelPath(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return notFound(path + ": no such file or directory");
  if (!fs::is_directory(path, ec)) {
    if (fs::path(path).extension() == ".gguf") return path;
    return invalidArgument(path + ": not a model (expected a folder or a .gguf file)");
  }
  if (fs::exists(fs::path(path) / "config.json", ec)) return path;
  std::vector<std::string> ggufs;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (e.path().extension() == ".gguf") ggufs.push_back(e.path().string());
  }
  if (ggufs.size() == 1) return ggufs[0];
  if (ggufs.size() > 1) {
    return invalidArgument(path + ": holds " + std::to_string(ggufs.size()) +
                           " .gguf files; name the one to load");
  }
  return notFound(path + ": no config.json and no .gguf file");
}

Result<ModelFormat> detectModelFormat(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(std::string resolved, resolveModelPath(path));
  std::error_code ec;
  return fs::is_directory(resolved, ec) ? ModelFormat::kHuggingFace : ModelFormat::kGguf;
}

namespace {

// Fills `out` from the checkpoint; `shape` empty means "optional, absent is fine".
Status hfTensor(const SafetensorsCheckpoint& ck, const std::string& dir, const std::string& name,
                const std::vector<int64_t>& shape, bool required, TensorView* out) {
  const SafetensorsTensor* t = ck.find(name);
  if (t == nullptr) {
    if (!required) return Status::ok();
    return notFound(dir + ": tensor '" + name + "' not found in the checkpoint");
  }
  TURBINE_ASSIGN_OR_RETURN(*out, safetensorsView(*t));
  return checkShape(*t->file, *out, shape);
}

Status hfLayer(const SafetensorsCheckpoint& ck, const std::string& dir, const ModelConfig& c,
               const ExpectedShapes& e, int i, LayerWeights* l) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const struct {
    const char* name;
    const std::vector<int64_t>& shape;
    TensorView* out;
  } kTensors[] = {
      {"input_layernorm.weight", e.norm, &l->attn_norm},
      {"self_attn.q_proj.weight", e.wq, &l->wq},
      {"self_attn.k_proj.weight", e.wk, &l->wk},
      {"self_attn.v_proj.weight", e.wv, &l->wv},
      {"self_attn.o_proj.weight", e.wo, &l->wo},
      {"post_attention_layernorm.weight", e.norm, &l->ffn_norm},
      {"mlp.gate_proj.weight", e.gate, &l->w_gate},
      {"mlp.up_proj.weight", e.up, &l->w_up},
      {"mlp.down_proj.weight", e.down, &l->w_down},
  };
  for (const auto& t : kTensors) {
    TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, p + t.name, t.shape, true, t.out));
  }
  TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, p + "self_attn.q_proj.bias", e.bq, c.attention_bias, &l->bq));
  TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, p + "self_attn.k_proj.bias", e.bk, c.attention_bias, &l->bk));
  TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, p + "self_attn.v_proj.bias", e.bv, c.attention_bias, &l->bv));
  return Status::ok();
}

Result<ModelWeights> loadHf(const std::string& dir) {
  ModelWeights w;
  TURBINE_ASSIGN_OR_RETURN(w.config, readHfConfig(dir));
  TURBINE_ASSIGN_OR_RETURN(auto ck, SafetensorsCheckpoint::open(dir));
  const ModelConfig& c = w.config;
  const ExpectedShapes e = expectedShapes(c);
  TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, "model.embed_tokens.weight", e.embed, true,
                                   &w.tok_embeddings));
  TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, "model.norm.weight", e.norm, true, &w.final_norm));
  if (!c.tie_word_embeddings) {
    TURBINE_RETURN_IF_ERROR(hfTensor(ck, dir, "lm_head.weight", e.embed, false, &w.lm_head));
  }
  if (!w.lm_head.present()) {
    w.lm_head = w.tok_embeddings;
    w.config.tie_word_embeddings = true;
  }
  w.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    TURBINE_RETURN_IF_ERROR(hfLayer(ck, dir, c, e, i, &w.layers[i]));
  }
  w.files = ck.mappedFiles();
  return w;
}

Result<nlohmann::json> readJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(path + ": not valid JSON: " + e.what());
  }
}

// Id of `text` in tokenizer.json (added tokens first, then the model vocabulary); -1 if absent.
int32_t tokenId(const nlohmann::json& tok, const std::string& text) {
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array()) {
    for (const auto& a : tok["added_tokens"]) {
      if (a.value("content", "") == text && a.contains("id") && a["id"].is_number_integer()) {
        return a["id"].get<int32_t>();
      }
    }
  }
  if (tok.contains("model") && tok["model"].contains("vocab") &&
      tok["model"]["vocab"].is_object()) {
    const auto& vocab = tok["model"]["vocab"];
    auto it = vocab.find(text);
    if (it != vocab.end() && it->is_number_integer()) return it->get<int32_t>();
  }
  return -1;
}

// Does tokenizer.json's post-processor put `bos` in front of a single sequence? (Llama 2/3 use a
// TemplateProcessing, possibly inside a Sequence, whose "single" template starts with it.)
bool postProcessorAddsBos(const nlohmann::json& pp, const std::string& bos) {
  if (!pp.is_object()) return false;
  const std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& p : pp["processors"]) {
      if (postProcessorAddsBos(p, bos)) return true;
    }
    return false;
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array() ||
      pp["single"].empty()) {
    return false;
  }
  const auto& first = pp["single"][0];
  return first.contains("SpecialToken") && first["SpecialToken"].value("id", "") == bos;
}

Result<ModelInfo> hfInfo(const std::string& dir) {
  ModelInfo info;
  info.format = ModelFormat::kHuggingFace;
  info.path = dir;
  info.model_id = fs::path(dir).lexically_normal().filename().string();
  if (info.model_id.empty()) info.model_id = fs::path(dir).parent_path().filename().string();
  TURBINE_ASSIGN_OR_RETURN(ModelConfig c, readHfConfig(dir));
  TURBINE_ASSIGN_OR_RETURN(TokenizerConfig tc, readTokenizerConfig(dir));
  info.architecture = c.architecture;
  info.chat_template = tc.chat_template;
  info.bos_token_id = c.bos_token_id;
  info.eos_token_ids = c.eos_token_ids;
  info.bos_token = tc.bos_token.value_or("");
  info.eos_token = tc.eos_token.value_or("");
  info.add_eos = tc.add_eos_token.value_or(false);
  const std::string tok_path = (fs::path(dir) / "tokenizer.json").string();
  std::error_code ec;
  nlohmann::json tok;
  if (fs::exists(tok_path, ec)) {
    info.tokenizer_path = tok_path;
    TURBINE_ASSIGN_OR_RETURN(tok, readJsonFile(tok_path));
  }
  // Token texts from tokenizer_config.json win over ids missing from config.json.
  if (!info.bos_token.empty() && !tok.is_null()) {
    int32_t id = tokenId(tok, info.bos_token);
    if (id >= 0) info.bos_token_id = id;
  }
  if (!info.eos_token.empty() && !tok.is_null()) {
    int32_t id = tokenId(tok, info.eos_token);
    if (id >= 0 && std::find(info.eos_token_ids.begin(), info.eos_token_ids.end(), id) ==
                       info.eos_token_ids.end()) {
      info.eos_token_ids.insert(info.eos_token_ids.begin(), id);
    }
  }
  if (tc.add_bos_token) {
    info.add_bos = *tc.add_bos_token;
  } else {
    info.add_bos = !info.bos_token.empty() && tok.is_object() && tok.contains("post_processor") &&
                   postProcessorAddsBos(tok["post_processor"], info.bos_token);
  }
  if (info.bos_token_id < 0) info.add_bos = false;
  return info;
}

}  // namespace

Result<ModelInfo> loadModelInfo(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(std::string resolved, resolveModelPath(path));
  std::error_code ec;
  if (fs::is_directory(resolved, ec)) return hfInfo(resolved);
  return ggufModelInfo(resolved);
}

Result<ModelConfig> loadModelConfig(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(std::string resolved, resolveModelPath(path));
  std::error_code ec;
  if (fs::is_directory(resolved, ec)) return readHfConfig(resolved);
  TURBINE_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(resolved));
  return ggufModelConfig(f);
}

Result<ModelWeights> loadModel(const std::string& path, std::function<void(float)> progress) {
  TURBINE_ASSIGN_OR_RETURN(std::string resolved, resolveModelPath(path));
  std::error_code ec;
  Result<ModelWeights> w =
      fs::is_directory(resolved, ec) ? loadHf(resolved) : loadGgufWeights(resolved);
  if (!w.isOk()) return w.status();
  bool forced = false;
  TURBINE_ASSIGN_OR_RETURN(Placement placement, choosePlacement(w->totalBytes(), &forced));
  if (placement == Placement::kCopy) {
    // The copy touches every page (no prefault). Where it cannot be had, auto keeps the map
    // (the views are only repointed on success); an explicit "copy" reports the error.
    Status st = copyToHugePages(*w, progress);
    if (st.isOk()) return w;
    if (forced) return st;
  }
  prefault(*w, progress);
  return w;
}

}  // namespace turbine::model
