#include "model/weights.h"

namespace turbine::model {

const char* dtypeName(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kQ8_0: return "q8_0";
  }
  return "?";
}

size_t dtypeBytes(DType t, int64_t n) {
  switch (t) {
    case DType::kF32: return static_cast<size_t>(n) * 4;
    case DType::kF16:
    case DType::kBF16: return static_cast<size_t>(n) * 2;
    case DType::kQ8_0: return static_cast<size_t>(n / kQ8BlockSize) * sizeof(BlockQ8_0);
  }
  return 0;
}

size_t ModelWeights::totalBytes() const {
  size_t total = tok_embeddings.nbytes + final_norm.nbytes;
  if (lm_head.data != tok_embeddings.data) total += lm_head.nbytes;
  for (const auto& l : layers) {
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.bq, &l.bk, &l.bv, &l.wo,
                                &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      total += t->nbytes;
    }
  }
  return total;
}

}  // namespace turbine::model
