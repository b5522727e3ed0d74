// Model loader: generated tiny models in every format and dtype give the expected config, shapes
// and dtypes; HF and GGUF hold the same weights (GGUF q/k rows permuted); hand-built Qwen2
// checkpoints (biases) and config variants; one-line errors naming the file and tensor or key.
#include "model/model_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/half.h"
#include "model/gguf_writer.h"
#include "model/hf_config.h"
#include "model/make_model.h"
#include "model/safetensors_writer.h"

namespace turbine::model {
namespace {

namespace fs = std::filesystem;

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void writeAll(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}
void replaceIn(const fs::path& p, const std::string& from, const std::string& to) {
  std::string s = readAll(p);
  size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  writeAll(p, s);
}

// Dequantizes row `r` of a 2-D tensor of any dtype.
std::vector<float> row(const TensorView& t, int64_t r) {
  const int64_t n = t.cols();
  std::vector<float> out(n);
  const auto* base = static_cast<const uint8_t*>(t.data) + dtypeBytes(t.dtype, n) * r;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (t.dtype) {
      case DType::kF32: std::memcpy(&out[i], base + 4 * i, 4); break;
      case DType::kF16: std::memcpy(&h, base + 2 * i, 2); out[i] = f16ToFloat(h); break;
      case DType::kBF16: std::memcpy(&h, base + 2 * i, 2); out[i] = bf16ToFloat(h); break;
      case DType::kQ8_0: {
        BlockQ8_0 b;
        std::memcpy(&b, base + (i / kQ8BlockSize) * sizeof(BlockQ8_0), sizeof b);
        out[i] = f16ToFloat(b.d) * b.qs[i % kQ8BlockSize];
        break;
      }
    }
  }
  return out;
}

class ModelLoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("turbine_loader_test_" + std::to_string(::getpid()));
    fs::create_directories(root_);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  // The generated tiny model "<format>_<dtype>" (seed 3), made on first use in this process
  // (CTest runs every test in its own process).
  static std::string model(const std::string& name) {
    const fs::path p = root_ / name;
    if (!fs::exists(p)) {
      const size_t us = name.find('_');
      MakeModelOptions o;
      o.preset = "tiny";
      o.format = name.substr(0, us);
      o.dtype = name.substr(us + 1);
      o.seed = 3;
      o.out = p.string();
      o.tokenizer_corpus_bytes = 256 << 10;
      Status st = makeModel(o);
      EXPECT_TRUE(st.isOk()) << st.toString();
    }
    return p.string();
  }
  // A fresh copy of a generated HF folder, to corrupt.
  static fs::path copyOf(const std::string& name, const std::string& as) {
    fs::path dst = root_ / as;
    fs::remove_all(dst);
    fs::copy(model(name), dst, fs::copy_options::recursive);
    return dst;
  }
  static fs::path root_;
};
fs::path ModelLoaderTest::root_;

void expectTinyConfig(const ModelConfig& c) {
  const ModelConfig want = presetConfig(*findModelPreset("tiny"));
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, want.vocab_size);
  EXPECT_EQ(c.hidden_size, want.hidden_size);
  EXPECT_EQ(c.intermediate_size, want.intermediate_size);
  EXPECT_EQ(c.num_layers, want.num_layers);
  EXPECT_EQ(c.num_heads, want.num_heads);
  EXPECT_EQ(c.num_kv_heads, want.num_kv_heads);
  EXPECT_EQ(c.head_dim, want.head_dim);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, want.rms_norm_eps);
  EXPECT_FLOAT_EQ(c.rope_theta, want.rope_theta);
  EXPECT_EQ(c.max_position_embeddings, want.max_position_embeddings);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
}

TEST_F(ModelLoaderTest, EveryFormatAndDtypeGivesConfigShapesAndDtypes) {
  const struct {
    const char* name;
    DType matrix, norm;
    RopeStyle rope;
  } cases[] = {
      {"hf_f32", DType::kF32, DType::kF32, RopeStyle::kHalf},
      {"hf_f16", DType::kF16, DType::kF16, RopeStyle::kHalf},
      {"hf_bf16", DType::kBF16, DType::kBF16, RopeStyle::kHalf},
      {"gguf_f32", DType::kF32, DType::kF32, RopeStyle::kInterleaved},
      {"gguf_f16", DType::kF16, DType::kF32, RopeStyle::kInterleaved},
      {"gguf_bf16", DType::kBF16, DType::kF32, RopeStyle::kInterleaved},
      {"gguf_q8_0", DType::kQ8_0, DType::kF32, RopeStyle::kInterleaved},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<float> progress;
    auto w = loadModel(model(c.name), [&](float f) { progress.push_back(f); });
    ASSERT_TRUE(w.isOk()) << w.status().toString();
    expectTinyConfig(w->config);
    EXPECT_EQ(w->config.rope_style, c.rope);
    const ModelConfig& cfg = w->config;
    const int64_t h = cfg.hidden_size, q = cfg.num_heads * cfg.head_dim,
                  kv = cfg.num_kv_heads * cfg.head_dim, f = cfg.intermediate_size;
    EXPECT_EQ(w->tok_embeddings.shape, (std::vector<int64_t>{cfg.vocab_size, h}));
    EXPECT_EQ(w->lm_head.shape, (std::vector<int64_t>{cfg.vocab_size, h}));
    EXPECT_NE(w->lm_head.data, w->tok_embeddings.data);
    EXPECT_EQ(w->final_norm.dtype, c.norm);
    ASSERT_EQ(w->layers.size(), 4u);
    for (const LayerWeights& l : w->layers) {
      EXPECT_EQ(l.wq.shape, (std::vector<int64_t>{q, h}));
      EXPECT_EQ(l.wk.shape, (std::vector<int64_t>{kv, h}));
      EXPECT_EQ(l.wv.shape, (std::vector<int64_t>{kv, h}));
      EXPECT_EQ(l.wo.shape, (std::vector<int64_t>{h, q}));
      EXPECT_EQ(l.w_gate.shape, (std::vector<int64_t>{f, h}));
      EXPECT_EQ(l.w_up.shape, (std::vector<int64_t>{f, h}));
      EXPECT_EQ(l.w_down.shape, (std::vector<int64_t>{h, f}));
      EXPECT_EQ(l.attn_norm.shape, (std::vector<int64_t>{h}));
      EXPECT_FALSE(l.bq.present());
      EXPECT_EQ(l.wq.dtype, c.matrix);
      EXPECT_EQ(l.w_down.dtype, c.matrix);
      EXPECT_EQ(l.ffn_norm.dtype, c.norm);
      EXPECT_EQ(l.wq.nbytes, dtypeBytes(c.matrix, q * h));
    }
    EXPECT_GT(w->totalBytes(), 0u);
    ASSERT_FALSE(progress.empty());
    EXPECT_FLOAT_EQ(progress.back(), 1.0f);
  }
}

// The same seed gives the same function in both formats: GGUF q/k rows are the HF rows permuted
// for interleaved RoPE, everything else is equal (up to the dtype's rounding).
TEST_F(ModelLoaderTest, HfAndGgufHoldTheSameWeights) {
  auto hf = loadModel(model("hf_f32"));
  auto gg = loadModel(model("gguf_f32"));
  auto q8 = loadModel(model("gguf_q8_0"));
  ASSERT_TRUE(hf.isOk() && gg.isOk() && q8.isOk());
  EXPECT_EQ(std::memcmp(hf->tok_embeddings.data, gg->tok_embeddings.data,
                        hf->tok_embeddings.nbytes), 0);
  EXPECT_EQ(std::memcmp(hf->lm_head.data, gg->lm_head.data, hf->lm_head.nbytes), 0);
  const int64_t hd = hf->config.head_dim;
  for (size_t i = 0; i < hf->layers.size(); ++i) {
    const LayerWeights& a = hf->layers[i];
    const LayerWeights& b = gg->layers[i];
    for (auto [x, y] : {std::pair{&a.wq, &b.wq}, {&a.wk, &b.wk}}) {
      std::vector<uint8_t> unpermuted(y->nbytes);
      inversePermuteQkRows(static_cast<const uint8_t*>(y->data), unpermuted.data(), y->rows(), hd,
                           static_cast<size_t>(y->cols()) * 4);
      EXPECT_EQ(std::memcmp(unpermuted.data(), x->data, x->nbytes), 0) << y->name;
      EXPECT_NE(std::memcmp(y->data, x->data, x->nbytes), 0) << "not permuted: " << y->name;
    }
    for (auto [x, y] : {std::pair{&a.wv, &b.wv}, {&a.wo, &b.wo}, {&a.w_down, &b.w_down},
                        {&a.attn_norm, &b.attn_norm}}) {
      EXPECT_EQ(std::memcmp(x->data, y->data, x->nbytes), 0) << y->name;
    }
  }
  // q8_0: every value within half a quantization step of the f32 one.
  const TensorView& ref = hf->layers[1].w_up;
  const TensorView& quant = q8->layers[1].w_up;
  for (int64_t r = 0; r < ref.rows(); r += 37) {
    std::vector<float> x = row(ref, r), y = row(quant, r);
    for (int64_t i = 0; i < ref.cols(); ++i) {
      ASSERT_NEAR(x[i], y[i], std::sqrt(3.0f / 128) / 127 * 0.51f + 1e-4f) << r << "," << i;
    }
  }
}

TEST_F(ModelLoaderTest, ModelInfoForTheTokenizerAndFrontend) {
  auto hf = loadModelInfo(model("hf_f32"));
  ASSERT_TRUE(hf.isOk()) << hf.status().toString();
  EXPECT_EQ(hf->format, ModelFormat::kHuggingFace);
  EXPECT_EQ(hf->model_id, "hf_f32");
  EXPECT_NE(hf->chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(hf->eos_token, "<|im_end|>");
  EXPECT_EQ(hf->bos_token_id, -1);
  EXPECT_FALSE(hf->add_bos);
  const int32_t vocab = presetConfig(*findModelPreset("tiny")).vocab_size;
  // <|endoftext|>, <|im_start|>, <|im_end|> are the last three ids of a fully learned vocab.
  ASSERT_EQ(hf->eos_token_ids.size(), 2u);
  EXPECT_EQ(hf->eos_token_ids[0], vocab - 1);
  EXPECT_EQ(hf->eos_token_ids[1], vocab - 3);
  EXPECT_TRUE(fs::exists(hf->tokenizer_path));

  auto gg = loadModelInfo(model("gguf_f32"));
  ASSERT_TRUE(gg.isOk()) << gg.status().toString();
  EXPECT_EQ(gg->format, ModelFormat::kGguf);
  EXPECT_EQ(gg->model_id, "turbine-tiny");
  EXPECT_EQ(gg->chat_template, hf->chat_template);
  EXPECT_EQ(gg->eos_token, "<|im_end|>");
  EXPECT_EQ(gg->eos_token_ids.front(), vocab - 1);
  EXPECT_FALSE(gg->add_bos);
  EXPECT_EQ(gg->tokenizer_path, gg->path);
}

TEST_F(ModelLoaderTest, PathResolution) {
  // A folder holding exactly one .gguf loads it; with two it asks which.
  auto w = loadModelConfig(model("gguf_f16"));
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_EQ(*detectModelFormat(model("gguf_f16")), ModelFormat::kGguf);
  EXPECT_EQ(*detectModelFormat(model("hf_f16")), ModelFormat::kHuggingFace);
  fs::path two = copyOf("gguf_f16", "two_ggufs");
  fs::copy_file(two / "model.gguf", two / "other.gguf");
  auto r = loadModel(two.string());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("2 .gguf files"), std::string::npos);
  r = loadModel((root_ / "absent").string());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(ModelLoaderTest, ShapeMismatchNamesFileAndTensor) {
  fs::path d = copyOf("hf_f32", "bad_shape");
  replaceIn(d / "config.json", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4");
  auto w = loadModel(d.string());
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().message(),
            (d / "model.safetensors").string() +
                ": tensor 'model.layers.0.self_attn.k_proj.weight': shape [64,128], expected "
                "[128,128]");
}

TEST_F(ModelLoaderTest, MissingTensorAndUnsupportedArchitecture) {
  fs::path d = copyOf("hf_f32", "missing");
  replaceIn(d / "config.json", "\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5");
  auto w = loadModel(d.string());
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().code(), StatusCode::kNotFound);
  EXPECT_NE(w.status().message().find("tensor 'model.layers.4.input_layernorm.weight' not found"),
            std::string::npos) << w.status().message();
  replaceIn(d / "config.json", "LlamaForCausalLM", "GPT2LMHeadModel");
  w = loadModel(d.string());
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(w.status().message().find("config.json: architecture 'GPT2LMHeadModel'"),
            std::string::npos) << w.status().message();
}

TEST_F(ModelLoaderTest, TruncatedFilesAreOneLineErrors) {
  fs::path d = copyOf("hf_bf16", "truncated_hf");
  std::string st = readAll(d / "model.safetensors");
  writeAll(d / "model.safetensors", st.substr(0, st.size() - 1000));
  auto w = loadModel(d.string());
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(w.status().message().find("model.safetensors: tensor '"), std::string::npos)
      << w.status().message();
  fs::path g = copyOf("gguf_q8_0", "truncated_gguf");
  std::string gb = readAll(g / "model.gguf");
  writeAll(g / "model.gguf", gb.substr(0, gb.size() / 2));
  w = loadModel(g.string());
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(w.status().message().find("data extends past end of file"), std::string::npos)
      << w.status().message();
  EXPECT_EQ(w.status().message().find('\n'), std::string::npos);
}

TEST_F(ModelLoaderTest, TiedEmbeddingsAndRopeScalingFromConfig) {
  fs::path d = copyOf("hf_f16", "tied");
  replaceIn(d / "config.json", "\"rope_scaling\": null",
            R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  replaceIn(d / "config.json", "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true");
  auto w = loadModel(d.string());
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_TRUE(w->config.tie_word_embeddings);
  EXPECT_EQ(w->lm_head.data, w->tok_embeddings.data);
  EXPECT_EQ(w->config.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_FLOAT_EQ(w->config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(w->config.rope_scaling.original_max_position_embeddings, 8192);
  replaceIn(d / "config.json", "\"llama3\"", "\"yarn\"");
  auto bad = loadModel(d.string());
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("rope_scaling': type 'yarn'"), std::string::npos);
}

TEST(HfConfigTest, SlidingWindowAsTransformersAppliesIt) {
  const std::string shape = R"("vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
      "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1)";
  auto parse = [&](const std::string& arch, const std::string& extra) {
    auto c = parseHfConfig(R"({"architectures": [")" + arch + R"("], )" + shape + extra + "}", "t");
    EXPECT_TRUE(c.isOk()) << c.status().toString();
    return c.isOk() ? *c : ModelConfig{};
  };
  // Mistral: every layer; null means none.
  ModelConfig m = parse("MistralForCausalLM", R"(, "sliding_window": 4096)");
  EXPECT_EQ(m.sliding_window, 4096);
  EXPECT_EQ(m.windowOf(0), 4096);
  EXPECT_EQ(parse("MistralForCausalLM", R"(, "sliding_window": null)").windowOf(0), 0);
  // Llama configs may carry the key; transformers ignores it.
  EXPECT_EQ(parse("LlamaForCausalLM", R"(, "sliding_window": 16)").windowOf(3), 0);
  // Qwen2: only with use_sliding_window, on layers >= max_window_layers.
  EXPECT_EQ(parse("Qwen2ForCausalLM", R"(, "sliding_window": 32768)").windowOf(3), 0);
  ModelConfig q = parse("Qwen2ForCausalLM",
                        R"(, "sliding_window": 64, "use_sliding_window": true, "max_window_layers": 2)");
  EXPECT_EQ(q.windowOf(1), 0);
  EXPECT_EQ(q.windowOf(2), 64);
  auto bad = parseHfConfig(
      R"({"architectures": ["MistralForCausalLM"], )" + shape + R"(, "sliding_window": -1})", "t");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("sliding_window"), std::string::npos);
}

// A hand-built Qwen2 (q/k/v biases, tied embeddings): H=8, 1 layer, 2 heads, 1 KV head, F=16.
struct MicroTensor {
  std::string hf, gguf;
  std::vector<int64_t> shape;
};
std::vector<MicroTensor> microQwen2() {
  return {{"model.embed_tokens.weight", "token_embd.weight", {10, 8}},
          {"model.norm.weight", "output_norm.weight", {8}},
          {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", {8}},
          {"model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", {8, 8}},
          {"model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias", {8}},
          {"model.layers.0.self_attn.k_proj.weight", "blk.0.attn_k.weight", {4, 8}},
          {"model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias", {4}},
          {"model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight", {4, 8}},
          {"model.layers.0.self_attn.v_proj.bias", "blk.0.attn_v.bias", {4}},
          {"model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight", {8, 8}},
          {"model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight", {8}},
          {"model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight", {16, 8}},
          {"model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight", {16, 8}},
          {"model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight", {8, 16}}};
}

TEST_F(ModelLoaderTest, Qwen2WithBiasesInBothFormats) {
  fs::path d = root_ / "qwen2";
  fs::create_directories(d);
  writeAll(d / "config.json", R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 10,
      "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-6,
      "rope_theta": 1000000.0, "tie_word_embeddings": true, "bos_token_id": 3,
      "eos_token_id": 4})");
  SafetensorsWriter sw;
  GgufWriter gw;
  gw.addString("general.architecture", "qwen2");
  gw.addUint32("qwen2.embedding_length", 8);
  gw.addUint32("qwen2.feed_forward_length", 16);
  gw.addUint32("qwen2.block_count", 1);
  gw.addUint32("qwen2.attention.head_count", 2);
  gw.addUint32("qwen2.attention.head_count_kv", 1);
  gw.addFloat32("qwen2.rope.freq_base", 1e6f);
  gw.addFloat32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  gw.addUint32("tokenizer.ggml.eos_token_id", 4);
  for (const auto& t : microQwen2()) {
    sw.addTensor(t.hf, "F32", t.shape);
    gw.addTensor(t.gguf, {t.shape.rbegin(), t.shape.rend()}, GgmlType::kF32);
  }
  ASSERT_TRUE(sw.open((d / "model.safetensors").string()).isOk());
  ASSERT_TRUE(gw.open((root_ / "qwen2.gguf").string()).isOk());
  for (const auto& t : microQwen2()) {
    int64_t n = 1;
    for (int64_t x : t.shape) n *= x;
    std::vector<float> v(n, 0.5f);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(v.data()), n * 4);
    ASSERT_TRUE(sw.writeTensorData(bytes).isOk());
    ASSERT_TRUE(gw.writeTensorData(bytes).isOk());
  }
  ASSERT_TRUE(sw.close().isOk());
  ASSERT_TRUE(gw.close().isOk());
  for (const fs::path& p : {d, root_ / "qwen2.gguf"}) {
    SCOPED_TRACE(p.string());
    auto w = loadModel(p.string());
    ASSERT_TRUE(w.isOk()) << w.status().toString();
    EXPECT_EQ(w->config.architecture, "Qwen2ForCausalLM");
    EXPECT_EQ(w->config.rope_style, RopeStyle::kHalf);
    EXPECT_TRUE(w->config.attention_bias);
    EXPECT_TRUE(w->config.tie_word_embeddings);
    EXPECT_FLOAT_EQ(w->config.rope_theta, 1e6f);
    EXPECT_EQ(w->config.head_dim, 4);
    EXPECT_EQ(w->config.eos_token_ids, std::vector<int32_t>{4});
    EXPECT_EQ(w->lm_head.data, w->tok_embeddings.data);
    EXPECT_EQ(w->layers[0].bq.shape, std::vector<int64_t>{8});
    EXPECT_EQ(w->layers[0].bk.shape, std::vector<int64_t>{4});
    EXPECT_TRUE(w->layers[0].bv.present());
    EXPECT_EQ(w->layers[0].w_down.shape, (std::vector<int64_t>{8, 16}));
  }
  // Without the biases the Qwen2 HF checkpoint is incomplete.
  SafetensorsWriter nb;
  for (const auto& t : microQwen2()) {
    if (t.hf.find(".bias") == std::string::npos) nb.addTensor(t.hf, "F32", t.shape);
  }
  ASSERT_TRUE(nb.open((d / "model.safetensors").string()).isOk());
  for (const auto& t : microQwen2()) {
    if (t.hf.find(".bias") != std::string::npos) continue;
    int64_t n = 1;
    for (int64_t x : t.shape) n *= x;
    std::vector<uint8_t> zeros(n * 4);
    ASSERT_TRUE(nb.writeTensorData(zeros).isOk());
  }
  ASSERT_TRUE(nb.close().isOk());
  auto w = loadModel(d.string());
  ASSERT_FALSE(w.isOk());
  EXPECT_NE(w.status().message().find("'model.layers.0.self_attn.q_proj.bias' not found"),
            std::string::npos) << w.status().message();
}

TEST_F(ModelLoaderTest, GgufUnsupportedArchitectureAndTensorType) {
  GgufWriter w;
  w.addString("general.architecture", "gpt2");
  std::string p = (root_ / "gpt2.gguf").string();
  ASSERT_TRUE(w.open(p).isOk());
  ASSERT_TRUE(w.close().isOk());
  auto r = loadModel(p);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("general.architecture': 'gpt2'"), std::string::npos);
  // A Q4_0 (type 2) embedding in an otherwise valid file names the tensor and its type.
  fs::path g = copyOf("gguf_f32", "q4");
  std::string bytes = readAll(g / "model.gguf");
  const std::string name = "token_embd.weight";
  size_t at = bytes.find(name);
  ASSERT_NE(at, std::string::npos);
  uint32_t type = 2;  // after name: n_dims (4) + 2 dims (16) -> type
  std::memcpy(&bytes[at + name.size() + 4 + 16], &type, 4);
  writeAll(g / "model.gguf", bytes);
  r = loadModel(g.string());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("tensor 'token_embd.weight': ggml type 2"),
            std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace turbine::model
