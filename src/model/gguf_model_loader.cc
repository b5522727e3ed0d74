// GGUF model loading: architecture `llama` and `qwen2` metadata -> ModelConfig, llama.cpp tensor
// names -> ModelWeights. GGUF lists dimensions innermost first (ne[0]); TensorView shapes are
// outermost first, so shapes are reversed here.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "model/model_loader_internal.h"

namespace turbine::model {
namespace {

Result<DType> ggmlToDType(const GgufFile& f, const GgufTensorInfo& t) {
  switch (static_cast<GgmlType>(t.ggml_type)) {
    case GgmlType::kF32: return DType::kF32;
    case GgmlType::kF16: return DType::kF16;
    case GgmlType::kBF16: return DType::kBF16;
    case GgmlType::kQ8_0: return DType::kQ8_0;
  }
  return unimplemented(f.path() + ": tensor '" + t.name + "': ggml type " +
                       std::to_string(t.ggml_type) + " not supported (F32, F16, BF16, Q8_0 are)");
}

Status ggufTensor(const GgufFile& f, const std::string& name, const std::vector<int64_t>& shape,
                  bool required, TensorView* out) {
  const GgufTensorInfo* t = f.findTensor(name);
  if (t == nullptr) {
    if (!required) return Status::ok();
    return notFound(f.path() + ": tensor '" + name + "' not found");
  }
  TURBINE_ASSIGN_OR_RETURN(out->dtype, ggmlToDType(f, *t));
  if (out->dtype == DType::kQ8_0 && t->ne.size() == 1) {
    return unimplemented(f.path() + ": tensor '" + name +
                         "': q8_0 is supported for matrices only, not for norms or biases");
  }
  out->name = name;
  out->shape.assign(t->ne.rbegin(), t->ne.rend());
  out->data = t->data;
  out->nbytes = t->nbytes;
  return checkShape(f.path(), *out, shape);
}

// Optional integer key: `def` when absent.
Result<int64_t> intOr(const GgufFile& f, const std::string& key, int64_t def) {
  if (f.find(key) == nullptr) return def;
  return f.getInt(key);
}
Result<double> floatOr(const GgufFile& f, const std::string& key, double def) {
  if (f.find(key) == nullptr) return def;
  return f.getFloat(key);
}

Result<int32_t> positiveInt(const GgufFile& f, const std::string& key) {
  TURBINE_ASSIGN_OR_RETURN(int64_t v, f.getInt(key));
  if (v <= 0 || v > INT32_MAX) {
    return invalidArgument(f.path() + ": key '" + key + "': value " + std::to_string(v) +
                           " out of range");
  }
  return static_cast<int32_t>(v);
}

Status ropeScaling(const GgufFile& f, const std::string& a, RopeScaling* rs) {
  if (const GgufTensorInfo* t = f.findTensor("rope_freqs.weight")) {
    // llama.cpp's converter stores Llama 3.1's rope scaling as precomputed frequency divisors.
    if (t->ggml_type != static_cast<uint32_t>(GgmlType::kF32) || t->ne.size() != 1) {
      return invalidArgument(f.path() + ": tensor 'rope_freqs.weight': expected a 1-D f32 tensor");
    }
    rs->freq_factors.resize(static_cast<size_t>(t->ne[0]));
    std::memcpy(rs->freq_factors.data(), t->data, rs->freq_factors.size() * sizeof(float));
    for (float v : rs->freq_factors) {
      if (!(v > 0.0f) || !std::isfinite(v)) {
        return invalidArgument(f.path() + ": tensor 'rope_freqs.weight': factors must be positive");
      }
    }
  }
  std::string type = "none";
  if (f.find(a + ".rope.scaling.type") != nullptr) {
    TURBINE_ASSIGN_OR_RETURN(type, f.getString(a + ".rope.scaling.type"));
  }
  TURBINE_ASSIGN_OR_RETURN(double factor, floatOr(f, a + ".rope.scaling.factor", 0.0));
  if (type == "none" && f.find(a + ".rope.scale_linear") != nullptr) {  // older files
    type = "linear";
    TURBINE_ASSIGN_OR_RETURN(factor, f.getFloat(a + ".rope.scale_linear"));
  }
  if (type == "none") return Status::ok();
  if (type != "linear") {
    return unimplemented(f.path() + ": key '" + a + ".rope.scaling.type': '" + type +
                         "' not supported (none, linear are)");
  }
  if (factor <= 0) {
    return invalidArgument(f.path() + ": key '" + a + ".rope.scaling.factor' must be positive");
  }
  rs->type = RopeScaling::Type::kLinear;
  rs->factor = static_cast<float>(factor);
  return Status::ok();
}

Status ggufShape(const GgufFile& f, const std::string& a, ModelConfig* c) {
  TURBINE_ASSIGN_OR_RETURN(c->hidden_size, positiveInt(f, a + ".embedding_length"));
  TURBINE_ASSIGN_OR_RETURN(c->intermediate_size, positiveInt(f, a + ".feed_forward_length"));
  TURBINE_ASSIGN_OR_RETURN(c->num_layers, positiveInt(f, a + ".block_count"));
  TURBINE_ASSIGN_OR_RETURN(c->num_heads, positiveInt(f, a + ".attention.head_count"));
  c->num_kv_heads = c->num_heads;
  if (f.find(a + ".attention.head_count_kv") != nullptr) {
    TURBINE_ASSIGN_OR_RETURN(c->num_kv_heads, positiveInt(f, a + ".attention.head_count_kv"));
  }
  if (c->num_heads % c->num_kv_heads != 0) {
    return invalidArgument(f.path() + ": key '" + a + ".attention.head_count_kv': " +
                           std::to_string(c->num_kv_heads) + " does not divide head_count " +
                           std::to_string(c->num_heads));
  }
  TURBINE_ASSIGN_OR_RETURN(int64_t hd, intOr(f, a + ".attention.key_length",
                                             c->hidden_size / c->num_heads));
  TURBINE_ASSIGN_OR_RETURN(int64_t rope_dim, intOr(f, a + ".rope.dimension_count", hd));
  if (rope_dim != hd) {
    return unimplemented(f.path() + ": key '" + a + ".rope.dimension_count': partial rotary (" +
                         std::to_string(rope_dim) + " of " + std::to_string(hd) +
                         " dims) not supported");
  }
  if (hd <= 0 || hd % 2 != 0) {
    return invalidArgument(f.path() + ": head dimension " + std::to_string(hd) + " is not even");
  }
  c->head_dim = static_cast<int32_t>(hd);
  // Vocabulary: explicit key, else the tokenizer, else the embedding matrix.
  int64_t vocab = 0;
  if (f.find(a + ".vocab_size") != nullptr) {
    TURBINE_ASSIGN_OR_RETURN(vocab, f.getInt(a + ".vocab_size"));
  } else if (const GgufTensorInfo* t = f.findTensor("token_embd.weight"); t && t->ne.size() == 2) {
    vocab = t->ne[1];
  } else if (const GgufValue* v = f.find("tokenizer.ggml.tokens"); v && v->type == GgufType::kArray) {
    vocab = static_cast<int64_t>(std::get<std::vector<GgufValue>>(v->v).size());
  }
  if (vocab <= 0 || vocab > INT32_MAX) return invalidArgument(f.path() + ": unknown vocabulary size");
  c->vocab_size = static_cast<int32_t>(vocab);
  return Status::ok();
}

std::vector<int32_t> specialIds(const GgufFile& f, std::initializer_list<const char*> keys) {
  std::vector<int32_t> ids;
  for (const char* k : keys) {
    auto v = f.getInt(k);
    if (v.isOk() && *v >= 0 && *v <= INT32_MAX &&
        std::find(ids.begin(), ids.end(), static_cast<int32_t>(*v)) == ids.end()) {
      ids.push_back(static_cast<int32_t>(*v));
    }
  }
  return ids;
}

}  // namespace

Result<ModelConfig> ggufModelConfig(const GgufFile& f) {
  TURBINE_ASSIGN_OR_RETURN(std::string a, f.getString("general.architecture"));
  ModelConfig c;
  if (a == "llama") {
    c.architecture = "LlamaForCausalLM";
    c.rope_style = RopeStyle::kInterleaved;
  } else if (a == "qwen2") {
    c.architecture = "Qwen2ForCausalLM";
    c.rope_style = RopeStyle::kHalf;
  } else {
    return unimplemented(f.path() + ": key 'general.architecture': '" + a +
                         "' not supported (llama, qwen2 are)");
  }
  TURBINE_RETURN_IF_ERROR(ggufShape(f, a, &c));
  TURBINE_ASSIGN_OR_RETURN(int64_t ctx, intOr(f, a + ".context_length", 2048));
  c.max_position_embeddings = static_cast<int32_t>(std::clamp<int64_t>(ctx, 1, INT32_MAX));
  TURBINE_ASSIGN_OR_RETURN(double eps, floatOr(f, a + ".attention.layer_norm_rms_epsilon", 1e-5));
  c.rms_norm_eps = static_cast<float>(eps);
  TURBINE_ASSIGN_OR_RETURN(double theta, floatOr(f, a + ".rope.freq_base", 10000.0));
  c.rope_theta = static_cast<float>(theta);
  TURBINE_RETURN_IF_ERROR(ropeScaling(f, a, &c.rope_scaling));
  c.tie_word_embeddings = f.findTensor("output.weight") == nullptr;
  c.attention_bias = f.findTensor("blk.0.attn_q.bias") != nullptr;
  std::vector<int32_t> bos = specialIds(f, {"tokenizer.ggml.bos_token_id"});
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  c.eos_token_ids = specialIds(f, {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                   "tokenizer.ggml.eom_token_id"});
  return c;
}

Result<ModelInfo> ggufModelInfo(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(path));
  TURBINE_ASSIGN_OR_RETURN(ModelConfig c, ggufModelConfig(f));
  ModelInfo info;
  info.format = ModelFormat::kGguf;
  info.path = path;
  info.tokenizer_path = path;
  auto name = f.getString("general.name");
  info.model_id = name.isOk() && !name->empty() ? *name : std::filesystem::path(path).stem().string();
  info.architecture = c.architecture;
  if (auto t = f.getString("tokenizer.chat_template"); t.isOk()) info.chat_template = *t;
  info.bos_token_id = c.bos_token_id;
  info.eos_token_ids = c.eos_token_ids;
  auto tokens = f.getStringArray("tokenizer.ggml.tokens");
  if (tokens.isOk()) {
    auto text = [&](int32_t id) { return id >= 0 && id < (int32_t)tokens->size() ? (*tokens)[id] : ""; };
    info.bos_token = text(c.bos_token_id);
    if (!c.eos_token_ids.empty()) info.eos_token = text(c.eos_token_ids[0]);
  }
  // llama.cpp's defaults: SentencePiece ("llama") vocabularies add BOS unless told otherwise.
  auto model = f.getString("tokenizer.ggml.model");
  bool add_bos_default = model.isOk() && *model == "llama";
  auto add_bos = f.getBool("tokenizer.ggml.add_bos_token");
  info.add_bos = (add_bos.isOk() ? *add_bos : add_bos_default) && c.bos_token_id >= 0;
  auto add_eos = f.getBool("tokenizer.ggml.add_eos_token");
  info.add_eos = add_eos.isOk() && *add_eos;
  return info;
}

Result<ModelWeights> loadGgufWeights(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(path));
  ModelWeights w;
  TURBINE_ASSIGN_OR_RETURN(w.config, ggufModelConfig(f));
  const ModelConfig& c = w.config;
  const ExpectedShapes e = expectedShapes(c);
  TURBINE_RETURN_IF_ERROR(ggufTensor(f, "token_embd.weight", e.embed, true, &w.tok_embeddings));
  TURBINE_RETURN_IF_ERROR(ggufTensor(f, "output_norm.weight", e.norm, true, &w.final_norm));
  TURBINE_RETURN_IF_ERROR(ggufTensor(f, "output.weight", e.embed, false, &w.lm_head));
  if (!w.lm_head.present()) w.lm_head = w.tok_embeddings;
  w.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = w.layers[i];
    const struct {
      const char* name;
      const std::vector<int64_t>& shape;
      TensorView* out;
      bool required;
    } kTensors[] = {
        {"attn_norm.weight", e.norm, &l.attn_norm, true},
        {"attn_q.weight", e.wq, &l.wq, true},
        {"attn_k.weight", e.wk, &l.wk, true},
        {"attn_v.weight", e.wv, &l.wv, true},
        {"attn_output.weight", e.wo, &l.wo, true},
        {"ffn_norm.weight", e.norm, &l.ffn_norm, true},
        {"ffn_gate.weight", e.gate, &l.w_gate, true},
        {"ffn_up.weight", e.up, &l.w_up, true},
        {"ffn_down.weight", e.down, &l.w_down, true},
        {"attn_q.bias", e.bq, &l.bq, c.attention_bias},
        {"attn_k.bias", e.bk, &l.bk, c.attention_bias},
        {"attn_v.bias", e.bv, &l.bv, c.attention_bias},
    };
    for (const auto& t : kTensors) {
      TURBINE_RETURN_IF_ERROR(ggufTensor(f, p + t.name, t.shape, t.required, t.out));
    }
  }
  w.files.push_back(f.file());
  return w;
}

}  // namespace turbine::model
