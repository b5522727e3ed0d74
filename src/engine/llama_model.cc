#include "engine/llama_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>

#include "engine/cpu/kernels.h"

namespace turbine::engine {

namespace {

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status checkShape(const model::TensorView& t, const char* role, std::vector<int64_t> expected) {
  if (!t.present()) return invalidArgument("model: missing tensor for " + std::string(role));
  if (t.shape != expected) {
    return invalidArgument("model: tensor " + t.name + " (" + role + ") has shape " +
                           shapeString(t.shape) + ", expected " + shapeString(expected));
  }
  return Status::ok();
}

Status checkOptionalShape(const model::TensorView& t, const char* role, int64_t n) {
  return t.present() ? checkShape(t, role, {n}) : Status::ok();
}

Status checkConfig(const model::ModelWeights& w) {
  const model::ModelConfig& c = w.config;
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_layers <= 0 ||
      c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0) {
    return invalidArgument("model: config has a non-positive dimension");
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return invalidArgument("model: num_heads " + std::to_string(c.num_heads) +
                           " is not a multiple of num_kv_heads " + std::to_string(c.num_kv_heads));
  }
  if (w.layers.size() != static_cast<size_t>(c.num_layers)) {
    return invalidArgument("model: " + std::to_string(w.layers.size()) +
                           " layers of weights, "
                           "config says " +
                           std::to_string(c.num_layers));
  }
  return Status::ok();
}

Status checkWeights(const model::ModelWeights& w) {
  TURBINE_RETURN_IF_ERROR(checkConfig(w));
  const model::ModelConfig& c = w.config;
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  const int64_t qd = int64_t{c.num_heads} * c.head_dim, kd = int64_t{c.num_kv_heads} * c.head_dim;
  TURBINE_RETURN_IF_ERROR(checkShape(w.tok_embeddings, "token embeddings", {c.vocab_size, h}));
  TURBINE_RETURN_IF_ERROR(checkShape(w.lm_head, "lm_head", {c.vocab_size, h}));
  TURBINE_RETURN_IF_ERROR(checkShape(w.final_norm, "final norm", {h}));
  for (const model::LayerWeights& l : w.layers) {
    TURBINE_RETURN_IF_ERROR(checkShape(l.attn_norm, "attention norm", {h}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.wq, "q projection", {qd, h}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.wk, "k projection", {kd, h}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.wv, "v projection", {kd, h}));
    TURBINE_RETURN_IF_ERROR(checkOptionalShape(l.bq, "q bias", qd));
    TURBINE_RETURN_IF_ERROR(checkOptionalShape(l.bk, "k bias", kd));
    TURBINE_RETURN_IF_ERROR(checkOptionalShape(l.bv, "v bias", kd));
    TURBINE_RETURN_IF_ERROR(checkShape(l.wo, "output projection", {h, qd}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.ffn_norm, "ffn norm", {h}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.w_gate, "ffn gate", {f, h}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.w_up, "ffn up", {f, h}));
    TURBINE_RETURN_IF_ERROR(checkShape(l.w_down, "ffn down", {h, f}));
  }
  return Status::ok();
}

const model::TensorView* biasOrNull(const model::TensorView& b) {
  return b.present() ? &b : nullptr;
}

// Runs fn(row_begin, row_end) over [0, rows), in parallel when there is more than one row.
template <typename Fn>
void forRows(cpu::ThreadPool& pool, int64_t rows, Fn&& fn) {
  if (rows <= 1 || pool.size() <= 1) {
    fn(int64_t{0}, rows);
    return;
  }
  pool.parallelFor(rows, [&](int, int64_t begin, int64_t end) { fn(begin, end); });
}

}  // namespace

KvDType autoKvDType(const model::ModelWeights& w) {
  if (w.layers.empty()) return KvDType::kF32;
  switch (w.layers.front().wq.dtype) {
    case model::DType::kBF16:
      return KvDType::kBF16;
    case model::DType::kF16:
    case model::DType::kQ8_0:
      return KvDType::kF16;
    case model::DType::kF32:
      break;
  }
  return KvDType::kF32;
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::create(
    std::shared_ptr<const model::ModelWeights> weights, const LlamaModelOptions& options) {
  if (!weights) return invalidArgument("model: no weights");
  TURBINE_RETURN_IF_ERROR(checkWeights(*weights));
  const model::ModelConfig& c = weights->config;
  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->max_model_len_ = options.max_model_len > 0 ? options.max_model_len : c.max_position_embeddings;
  if (m->max_model_len_ <= 0) return invalidArgument("model: max_model_len must be positive");
  if (options.block_size <= 0) {
    return invalidArgument("model: block_size must be positive, got " +
                           std::to_string(options.block_size));
  }
  TURBINE_ASSIGN_OR_RETURN(RopeTable rope, RopeTable::create(c, m->max_model_len_));
  m->rope_ = std::make_unique<RopeTable>(std::move(rope));

  KvCacheOptions kv;
  kv.num_layers = c.num_layers;
  kv.num_kv_heads = c.num_kv_heads;
  kv.head_dim = c.head_dim;
  kv.block_size = options.block_size;
  kv.dtype = options.kv_dtype.value_or(autoKvDType(*weights));
  kv.num_blocks = options.num_blocks;
  kv.memory_bytes = options.kv_cache_bytes;
  if (kv.num_blocks <= 0 && kv.memory_bytes == 0) {
    kv.num_blocks = 4 * ((m->max_model_len_ + options.block_size - 1) / options.block_size);
  }
  TURBINE_ASSIGN_OR_RETURN(m->kv_, KvCache::create(kv));
  m->pool_ = std::make_unique<cpu::ThreadPool>(options.threads);
  m->weights_ = std::move(weights);
  return m;
}

Status LlamaModel::validate(const Batch& batch, std::span<float> logits) {
  const int32_t bs = kv_->blockSize();
  const int32_t vocab = config().vocab_size;
  slot_seen_.clear();
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& s = batch.seqs[i];
    // Built only on error: a valid step allocates nothing here.
    auto where = [i] { return "batch.seqs[" + std::to_string(i) + "]: "; };
    if (s.tokens.empty()) return invalidArgument(where() + "no tokens");
    if (s.start_pos < 0) return invalidArgument(where() + "negative start_pos");
    if (s.num_logits < 0 || s.num_logits > static_cast<int32_t>(s.tokens.size())) {
      return invalidArgument(where() + "num_logits " + std::to_string(s.num_logits) + " outside [0, " +
                             std::to_string(s.tokens.size()) + "]");
    }
    const int64_t end = int64_t{s.start_pos} + static_cast<int64_t>(s.tokens.size());
    if (end > max_model_len_) {
      return invalidArgument(where() + "positions up to " + std::to_string(end - 1) +
                             " reach max_model_len " + std::to_string(max_model_len_));
    }
    const int64_t need = (end + bs - 1) / bs;
    if (static_cast<int64_t>(s.block_table.size()) < need) {
      return invalidArgument(where() + "block table has " + std::to_string(s.block_table.size()) +
                             " blocks, positions [0, " + std::to_string(end) + ") need " +
                             std::to_string(need));
    }
    for (int64_t b = 0; b < need; ++b) {
      const BlockId id = s.block_table[static_cast<size_t>(b)];
      if (id < 0 || id >= kv_->numBlocks()) {
        return invalidArgument(where() + "block id " + std::to_string(id) + " out of [0, " +
                               std::to_string(kv_->numBlocks()) + ")");
      }
    }
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      if (s.tokens[t] < 0 || s.tokens[t] >= vocab) {
        return invalidArgument(where() + "token id " + std::to_string(s.tokens[t]) +
                               " out of [0, " + std::to_string(vocab) + ")");
      }
      const int64_t pos = s.start_pos + static_cast<int64_t>(t);
      slot_seen_.push_back(int64_t{s.block_table[static_cast<size_t>(pos / bs)]} * bs + pos % bs);
    }
  }
  std::sort(slot_seen_.begin(), slot_seen_.end());
  if (std::adjacent_find(slot_seen_.begin(), slot_seen_.end()) != slot_seen_.end()) {
    return invalidArgument("batch: two tokens of the step write the same KV cache slot");
  }
  const size_t need_logits = static_cast<size_t>(batch.numLogits()) * static_cast<size_t>(vocab);
  if (logits.size() < need_logits) {
    return invalidArgument("batch: logits buffer holds " + std::to_string(logits.size()) +
                           " floats, " + std::to_string(need_logits) + " needed");
  }
  return Status::ok();
}

void LlamaModel::prepare(const Batch& batch) {
  const model::ModelConfig& c = config();
  const size_t n = static_cast<size_t>(batch.numTokens());
  tokens_.clear();
  positions_.clear();
  seq_of_.clear();
  logit_rows_.clear();
  attn_seqs_.clear();
  for (const SequenceChunk& s : batch.seqs) {
    const int64_t row = static_cast<int64_t>(tokens_.size());
    attn_seqs_.push_back({s.start_pos, static_cast<int32_t>(s.tokens.size()), row, s.block_table});
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      tokens_.push_back(s.tokens[t]);
      positions_.push_back(s.start_pos + static_cast<int32_t>(t));
      seq_of_.push_back(static_cast<int32_t>(attn_seqs_.size() - 1));
    }
    const auto end = static_cast<int64_t>(tokens_.size());
    for (int64_t r = end - s.num_logits; r < end; ++r) logit_rows_.push_back(r);
  }
  const size_t h = static_cast<size_t>(c.hidden_size), f = static_cast<size_t>(c.intermediate_size);
  const size_t qd = static_cast<size_t>(c.num_heads) * static_cast<size_t>(c.head_dim);
  const size_t kd = static_cast<size_t>(c.num_kv_heads) * static_cast<size_t>(c.head_dim);
  x_.resize(n * h);
  xn_.resize(n * h);
  tmp_.resize(n * h);
  q_.resize(n * qd);
  attn_.resize(n * qd);
  k_.resize(n * kd);
  v_.resize(n * kd);
  gate_.resize(n * f);
  up_.resize(n * f);
}

Status LlamaModel::readBlock(BlockId block, void* dst) {
  if (block < 0 || block >= kv_->numBlocks())
    return outOfRange("KV block " + std::to_string(block) + " outside the pool");
  std::memcpy(dst, kv_->blockData(block), kv_->bytesPerBlock());
  return Status::ok();
}

Status LlamaModel::writeBlock(BlockId block, const void* src) {
  if (block < 0 || block >= kv_->numBlocks())
    return outOfRange("KV block " + std::to_string(block) + " outside the pool");
  std::memcpy(kv_->blockData(block), src, kv_->bytesPerBlock());
  return Status::ok();
}

Status LlamaModel::forward(const Batch& batch, std::span<float> logits) {
  TURBINE_RETURN_IF_ERROR(validate(batch, logits));
  if (batch.seqs.empty()) return Status::ok();
  prepare(batch);
  const int64_t n = static_cast<int64_t>(tokens_.size());
  cpu::embedRows(weights_->tok_embeddings, tokens_, x_.data());
  for (int32_t l = 0; l < config().num_layers; ++l) runLayer(l, n);
  if (!logit_rows_.empty()) computeLogits(logits);
  return Status::ok();
}

void LlamaModel::storeKv(int32_t layer, int64_t n) {
  const model::ModelConfig& c = config();
  const int32_t bs = kv_->blockSize();
  const size_t qd = static_cast<size_t>(c.num_heads) * static_cast<size_t>(c.head_dim);
  const size_t kd = static_cast<size_t>(c.num_kv_heads) * static_cast<size_t>(c.head_dim);
  forRows(*pool_, n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const size_t i = static_cast<size_t>(r);
      const int32_t pos = positions_[i];
      float* qr = q_.data() + i * qd;
      float* kr = k_.data() + i * kd;
      rope_->apply(qr, c.num_heads, pos);
      rope_->apply(kr, c.num_kv_heads, pos);
      const AttentionSeq& s = attn_seqs_[static_cast<size_t>(seq_of_[i])];
      kv_->store(layer, s.block_table[static_cast<size_t>(pos / bs)], pos % bs, kr,
                 v_.data() + i * kd);
    }
  });
}

void LlamaModel::runLayer(int32_t layer, int64_t n) {
  const model::ModelConfig& c = config();
  const model::LayerWeights& w = weights_->layers[static_cast<size_t>(layer)];
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  // Attention block: xn = norm(x); q, k, v = xn W^T; rope; cache; attend; x += attn Wo^T.
  forRows(*pool_, n, [&](int64_t r0, int64_t r1) {
    cpu::rmsnorm(x_.data() + r0 * h, w.attn_norm, c.rms_norm_eps, r1 - r0, h, xn_.data() + r0 * h);
  });
  const std::array<cpu::MatmulOut, 3> qkv{{{&w.wq, q_.data(), biasOrNull(w.bq)},
                                           {&w.wk, k_.data(), biasOrNull(w.bk)},
                                           {&w.wv, v_.data(), biasOrNull(w.bv)}}};
  cpu::matmulGroup(*pool_, xn_.data(), n, qkv);
  storeKv(layer, n);
  const AttentionShape shape{c.num_heads, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                             c.windowOf(layer)};
  attention_.run(*pool_, *kv_, layer, attn_seqs_, shape, q_.data(), attn_.data());
  cpu::matmul(*pool_, attn_.data(), n, w.wo, tmp_.data());
  cpu::addF32(x_.data(), tmp_.data(), n * h);
  // FFN block: x += (silu(xn Wg^T) * (xn Wu^T)) Wd^T with xn = norm(x).
  forRows(*pool_, n, [&](int64_t r0, int64_t r1) {
    cpu::rmsnorm(x_.data() + r0 * h, w.ffn_norm, c.rms_norm_eps, r1 - r0, h, xn_.data() + r0 * h);
  });
  const std::array<cpu::MatmulOut, 2> gate_up{{{&w.w_gate, gate_.data(), nullptr},
                                               {&w.w_up, up_.data(), nullptr}}};
  cpu::matmulGroup(*pool_, xn_.data(), n, gate_up);
  forRows(*pool_, n, [&](int64_t r0, int64_t r1) {
    cpu::siluMul(gate_.data() + r0 * f, up_.data() + r0 * f, (r1 - r0) * f);
  });
  cpu::matmul(*pool_, gate_.data(), n, w.w_down, tmp_.data());
  cpu::addF32(x_.data(), tmp_.data(), n * h);
}

void LlamaModel::computeLogits(std::span<float> logits) {
  const model::ModelConfig& c = config();
  const size_t h = static_cast<size_t>(c.hidden_size);
  const int64_t nl = static_cast<int64_t>(logit_rows_.size());
  // Gather the wanted rows into xn_ (rows [0, nl)), normalize, project.
  for (size_t i = 0; i < logit_rows_.size(); ++i) {
    std::copy_n(x_.data() + static_cast<size_t>(logit_rows_[i]) * h, h, xn_.data() + i * h);
  }
  cpu::rmsnorm(xn_.data(), weights_->final_norm, c.rms_norm_eps, nl, c.hidden_size, xn_.data());
  cpu::matmul(*pool_, xn_.data(), nl, weights_->lm_head, logits.data());
}

}  // namespace turbine::engine
