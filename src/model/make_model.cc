// makeModel: presets, deterministic weight generation, and the streaming HF / GGUF writers.
#include "model/make_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/half.h"
#include "common/random.h"
#include "model/bpe_trainer.h"
#include "model/gguf_writer.h"
#include "model/make_model_tokenizer.h"
#include "model/safetensors_writer.h"
#include "model/weights.h"

namespace turbine::model {
namespace {

namespace fs = std::filesystem;

// Weights come from the portable common PRNG (no std distributions), so a seed gives the same
// bytes on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t next() { return gen_.next(); }
  // Uniform in [-1, 1), 24 bits of resolution.
  float symmetric() { return static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f; }

 private:
  Xoshiro256 gen_;
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

enum class Init { kEmbedding, kLinear, kNorm };

// One tensor to write: HF name and [out, in] shape; GGUF name; how to initialise it; q/k heads.
struct TensorSpec {
  std::string hf_name, gguf_name;
  std::vector<int64_t> shape;
  Init init;
  int64_t permute_head_dim = 0;  // > 0: permute rows for GGUF (q and k)
};

std::vector<TensorSpec> tensorSpecs(const ModelConfig& c) {
  const int64_t h = c.hidden_size, hd = c.head_dim, f = c.intermediate_size;
  const int64_t q = int64_t{c.num_heads} * hd, kv = int64_t{c.num_kv_heads} * hd;
  std::vector<TensorSpec> s = {
      {"model.embed_tokens.weight", "token_embd.weight", {c.vocab_size, h}, Init::kEmbedding},
      {"model.norm.weight", "output_norm.weight", {h}, Init::kNorm},
      {"lm_head.weight", "output.weight", {c.vocab_size, h}, Init::kLinear},
  };
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string g = "blk." + std::to_string(i) + ".";
    s.push_back({p + "input_layernorm.weight", g + "attn_norm.weight", {h}, Init::kNorm});
    s.push_back({p + "self_attn.q_proj.weight", g + "attn_q.weight", {q, h}, Init::kLinear, hd});
    s.push_back({p + "self_attn.k_proj.weight", g + "attn_k.weight", {kv, h}, Init::kLinear, hd});
    s.push_back({p + "self_attn.v_proj.weight", g + "attn_v.weight", {kv, h}, Init::kLinear});
    s.push_back({p + "self_attn.o_proj.weight", g + "attn_output.weight", {h, q}, Init::kLinear});
    s.push_back({p + "post_attention_layernorm.weight", g + "ffn_norm.weight", {h}, Init::kNorm});
    s.push_back({p + "mlp.gate_proj.weight", g + "ffn_gate.weight", {f, h}, Init::kLinear});
    s.push_back({p + "mlp.up_proj.weight", g + "ffn_up.weight", {f, h}, Init::kLinear});
    s.push_back({p + "mlp.down_proj.weight", g + "ffn_down.weight", {h, f}, Init::kLinear});
  }
  return s;
}

// Produces a tensor's values row by row, in HF layout, from (seed, name).
class ValueStream {
 public:
  ValueStream(uint64_t seed, const TensorSpec& t)
      : rng_(seed ^ fnv1a(t.hf_name)), init_(t.init) {
    const double fan_in = static_cast<double>(t.shape.back());
    // Uniform on [-a, a] has std a/sqrt(3).
    scale_ = init_ == Init::kEmbedding ? std::sqrt(3.0f)
                                       : static_cast<float>(std::sqrt(3.0 / fan_in));
  }
  void fill(float* out, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const float u = rng_.symmetric();
      out[i] = init_ == Init::kNorm ? 1.0f + 0.1f * u : scale_ * u;
    }
  }

 private:
  Rng rng_;
  Init init_;
  float scale_ = 1.0f;
};

void quantizeQ8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kQ8BlockSize; ++b) {
    const float* v = x + b * kQ8BlockSize;
    float amax = 0.0f;
    for (int i = 0; i < kQ8BlockSize; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 blk;
    blk.d = floatToF16(d);
    for (int i = 0; i < kQ8BlockSize; ++i) {
      blk.qs[i] = static_cast<int8_t>(std::lround(v[i] * id));
    }
    std::memcpy(out + b * sizeof(BlockQ8_0), &blk, sizeof(BlockQ8_0));
  }
}

// Converts `n` floats to `dtype` bytes appended to `out`.
void encode(const float* x, int64_t n, DType dtype, std::vector<uint8_t>* out) {
  const size_t at = out->size();
  out->resize(at + dtypeBytes(dtype, n));
  uint8_t* p = out->data() + at;
  switch (dtype) {
    case DType::kF32: std::memcpy(p, x, static_cast<size_t>(n) * 4); break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = floatToF16(x[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = floatToBf16(x[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      break;
    case DType::kQ8_0: quantizeQ8_0(x, n, p); break;
  }
}

// Streams one tensor to `sink` in chunks of whole heads (q/k) or rows, converted to `dtype`.
template <typename Sink>
Status streamTensor(const TensorSpec& t, uint64_t seed, DType dtype, bool gguf_permute,
                    Sink&& sink) {
  const int64_t rows = t.shape.size() == 1 ? 1 : t.shape[0];
  const int64_t cols = t.shape.back();
  constexpr int64_t kChunkElems = int64_t{1} << 22;
  int64_t chunk_rows = std::max<int64_t>(1, kChunkElems / cols);
  if (t.permute_head_dim > 0) {
    chunk_rows = std::max<int64_t>(1, chunk_rows / t.permute_head_dim) * t.permute_head_dim;
  }
  ValueStream values(seed, t);
  std::vector<float> buf, permuted;
  std::vector<uint8_t> bytes;
  for (int64_t r = 0; r < rows; r += chunk_rows) {
    const int64_t n_rows = std::min(chunk_rows, rows - r);
    buf.resize(static_cast<size_t>(n_rows * cols));
    values.fill(buf.data(), buf.size());
    const float* src = buf.data();
    if (gguf_permute && t.permute_head_dim > 0) {
      permuted.resize(buf.size());
      permuteQkRows(reinterpret_cast<const uint8_t*>(buf.data()),
                    reinterpret_cast<uint8_t*>(permuted.data()), n_rows, t.permute_head_dim,
                    static_cast<size_t>(cols) * 4);
      src = permuted.data();
    }
    bytes.clear();
    encode(src, n_rows * cols, dtype, &bytes);
    TURBINE_RETURN_IF_ERROR(sink(std::span<const uint8_t>(bytes)));
  }
  return Status::ok();
}

Result<DType> parseDType(const std::string& s) {
  if (s == "f32") return DType::kF32;
  if (s == "f16") return DType::kF16;
  if (s == "bf16") return DType::kBF16;
  if (s == "q8_0") return DType::kQ8_0;
  return invalidArgument("make-model: --dtype '" + s + "' is not one of f32, f16, bf16, q8_0");
}

const char* safetensorsDtype(DType t) {
  switch (t) {
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    default: return "F32";
  }
}

GgmlType ggmlType(DType t) {
  switch (t) {
    case DType::kF16: return GgmlType::kF16;
    case DType::kBF16: return GgmlType::kBF16;
    case DType::kQ8_0: return GgmlType::kQ8_0;
    default: return GgmlType::kF32;
  }
}

// Reports progress by bytes written.
struct Progress {
  const std::function<void(float)>& fn;
  uint64_t total;
  uint64_t done = 0;
  void add(size_t n) {
    done += n;
    if (fn) fn(total ? static_cast<float>(static_cast<double>(done) / total) : 1.0f);
  }
};

Status writeHf(const MakeModelOptions& o, const ModelConfig& c, DType dtype,
               const BpeVocab& vocab) {
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return ioError(o.out + ": cannot create folder: " + ec.message());
  const char* torch_dtype =
      dtype == DType::kF16 ? "float16" : dtype == DType::kBF16 ? "bfloat16" : "float32";
  TURBINE_RETURN_IF_ERROR(writeHfConfigFiles(o.out, c, torch_dtype, specialIds(vocab)));
  TURBINE_RETURN_IF_ERROR(writeHfTokenizerFiles(o.out, vocab, c.max_position_embeddings));
  const auto specs = tensorSpecs(c);
  SafetensorsWriter w;
  w.addMetadata("format", "pt");
  for (const auto& t : specs) w.addTensor(t.hf_name, safetensorsDtype(dtype), t.shape);
  TURBINE_RETURN_IF_ERROR(w.open((fs::path(o.out) / "model.safetensors").string()));
  Progress progress{o.progress, w.dataBytes()};
  for (const auto& t : specs) {
    TURBINE_RETURN_IF_ERROR(streamTensor(t, o.seed, dtype, false, [&](std::span<const uint8_t> b) {
      progress.add(b.size());
      return w.writeTensorData(b);
    }));
  }
  return w.close();
}

Status writeGguf(const MakeModelOptions& o, const ModelConfig& c, DType dtype,
                 const BpeVocab& vocab) {
  const std::string path = ggufOutputPath(o.out);
  std::error_code ec;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return ioError(path + ": cannot create folder: " + ec.message());
  // llama.cpp's general.file_type: ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7, MOSTLY_BF16 = 32.
  const uint32_t file_type = dtype == DType::kF16    ? 1
                             : dtype == DType::kQ8_0 ? 7
                             : dtype == DType::kBF16 ? 32
                                                     : 0;
  GgufWriter w;
  addGgufMetadata(&w, c, vocab, "turbine-" + o.preset, file_type);
  const auto specs = tensorSpecs(c);
  uint64_t total = 0;
  std::vector<DType> dtypes;
  for (const auto& t : specs) {
    // As llama.cpp does: 1-D tensors (norms) stay F32 whatever the file type.
    dtypes.push_back(t.shape.size() == 1 ? DType::kF32 : dtype);
    total += w.addTensor(t.gguf_name, {t.shape.rbegin(), t.shape.rend()}, ggmlType(dtypes.back()));
  }
  TURBINE_RETURN_IF_ERROR(w.open(path));
  Progress progress{o.progress, total};
  for (size_t i = 0; i < specs.size(); ++i) {
    TURBINE_RETURN_IF_ERROR(
        streamTensor(specs[i], o.seed, dtypes[i], true, [&](std::span<const uint8_t> b) {
          progress.add(b.size());
          return w.writeTensorData(b);
        }));
  }
  return w.close();
}

}  // namespace

const std::vector<ModelPreset>& modelPresets() {
  static const std::vector<ModelPreset> kPresets = {
      {"tiny", 128, 4, 4, 2, 384, 4096},
      {"small", 512, 8, 8, 4, 1408, 8192},
      {"medium", 1024, 16, 16, 8, 2816, 32000},
      {"large", 2048, 22, 32, 4, 5632, 32000},
  };
  return kPresets;
}

Result<ModelPreset> findModelPreset(const std::string& name) {
  for (const auto& p : modelPresets()) {
    if (p.name == name) return p;
  }
  return invalidArgument("make-model: --preset '" + name +
                         "' is not one of tiny, small, medium, large");
}

ModelConfig presetConfig(const ModelPreset& p) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = p.vocab_size;
  c.hidden_size = p.hidden_size;
  c.intermediate_size = p.intermediate_size;
  c.num_layers = p.num_layers;
  c.num_heads = p.num_heads;
  c.num_kv_heads = p.num_kv_heads;
  c.head_dim = p.hidden_size / p.num_heads;
  c.max_position_embeddings = p.max_position_embeddings;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  return c;
}

std::string ggufOutputPath(const std::string& out) {
  if (fs::path(out).extension() == ".gguf") return out;
  return (fs::path(out) / "model.gguf").string();
}

void permuteQkRows(const uint8_t* src, uint8_t* dst, int64_t rows, int64_t head_dim,
                   size_t row_bytes) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < rows / head_dim; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t i = 0; i < 2; ++i) {
        const int64_t out_row = h * head_dim + 2 * j + i, in_row = h * head_dim + i * half + j;
        std::memcpy(dst + out_row * row_bytes, src + in_row * row_bytes, row_bytes);
      }
    }
  }
}

void inversePermuteQkRows(const uint8_t* src, uint8_t* dst, int64_t rows, int64_t head_dim,
                          size_t row_bytes) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < rows / head_dim; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t i = 0; i < 2; ++i) {
        const int64_t out_row = h * head_dim + i * half + j, in_row = h * head_dim + 2 * j + i;
        std::memcpy(dst + out_row * row_bytes, src + in_row * row_bytes, row_bytes);
      }
    }
  }
}

Status makeModel(const MakeModelOptions& o) {
  TURBINE_ASSIGN_OR_RETURN(ModelPreset preset, findModelPreset(o.preset));
  TURBINE_ASSIGN_OR_RETURN(DType dtype, parseDType(o.dtype));
  if (o.format != "hf" && o.format != "gguf") {
    return invalidArgument("make-model: --format '" + o.format + "' is not one of hf, gguf");
  }
  if (dtype == DType::kQ8_0 && o.format != "gguf") {
    return invalidArgument("make-model: --dtype q8_0 needs --format gguf (safetensors has no "
                           "q8_0)");
  }
  if (o.out.empty()) return invalidArgument("make-model: --out is required");
  const ModelConfig c = presetConfig(preset);
  BpeTrainerOptions topt;
  topt.vocab_size = c.vocab_size;
  topt.max_bytes = o.tokenizer_corpus_bytes;
  TURBINE_ASSIGN_OR_RETURN(BpeVocab vocab, trainBpe(topt));
  return o.format == "hf" ? writeHf(o, c, dtype, vocab) : writeGguf(o, c, dtype, vocab);
}

}  // namespace turbine::model
