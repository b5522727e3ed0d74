#include "engine/kv_cache.h"

#include <limits>
#include <string>
#include <utility>

#include "common/half.h"
#include "engine/cpu/kernels.h"

namespace turbine::engine {

const char* kvDTypeName(KvDType t) {
  switch (t) {
    case KvDType::kF32:
      return "f32";
    case KvDType::kF16:
      return "f16";
    case KvDType::kBF16:
      return "bf16";
  }
  return "?";
}

std::optional<KvDType> kvDTypeFromName(std::string_view name) {
  for (KvDType t : {KvDType::kF32, KvDType::kF16, KvDType::kBF16}) {
    if (name == kvDTypeName(t)) return t;
  }
  return std::nullopt;
}

size_t kvDTypeBytes(KvDType t) { return t == KvDType::kF32 ? 4 : 2; }

model::DType kvElementType(KvDType t) {
  switch (t) {
    case KvDType::kF16:
      return model::DType::kF16;
    case KvDType::kBF16:
      return model::DType::kBF16;
    case KvDType::kF32:
      break;
  }
  return model::DType::kF32;
}

size_t KvCache::bytesPerToken(const KvCacheOptions& o) {
  return static_cast<size_t>(o.num_layers) * 2 * static_cast<size_t>(o.num_kv_heads) *
         static_cast<size_t>(o.head_dim) * kvDTypeBytes(o.dtype);
}

Result<std::unique_ptr<KvCache>> KvCache::create(const KvCacheOptions& o) {
  if (o.num_layers <= 0 || o.num_kv_heads <= 0 || o.head_dim <= 0 || o.block_size <= 0) {
    return invalidArgument(
        "kv cache: num_layers, num_kv_heads, head_dim and block_size must be "
        "positive (got " +
        std::to_string(o.num_layers) + ", " + std::to_string(o.num_kv_heads) + ", " +
        std::to_string(o.head_dim) + ", " + std::to_string(o.block_size) + ")");
  }
  const size_t block_bytes = bytesPerToken(o) * static_cast<size_t>(o.block_size);
  int64_t blocks = o.num_blocks;
  if (blocks <= 0) blocks = static_cast<int64_t>(o.memory_bytes / block_bytes);
  if (blocks <= 0) {
    return invalidArgument("kv cache: the pool holds no block (num_blocks " +
                           std::to_string(o.num_blocks) + ", memory_bytes " +
                           std::to_string(o.memory_bytes) + ", one block takes " +
                           std::to_string(block_bytes) + " bytes)");
  }
  if (blocks > std::numeric_limits<int32_t>::max()) blocks = std::numeric_limits<int32_t>::max();
  const size_t bytes = block_bytes * static_cast<size_t>(blocks);
  auto memory = AnonymousMemory::allocate(
      bytes, "kv cache (" + std::to_string(blocks) + " blocks)");
  if (!memory.isOk()) return memory.status();
  return std::unique_ptr<KvCache>(
      new KvCache(o, static_cast<int32_t>(blocks), std::move(*memory)));
}

KvCache::KvCache(const KvCacheOptions& options, int32_t num_blocks, AnonymousMemory memory)
    : opt_(options), num_blocks_(num_blocks), memory_(std::move(memory)), base_(memory_.data()) {
  head_elems_ = static_cast<size_t>(opt_.block_size) * static_cast<size_t>(opt_.head_dim);
  block_elems_ = static_cast<size_t>(opt_.num_layers) * 2 * static_cast<size_t>(opt_.num_kv_heads) *
                 head_elems_;
}

void KvCache::store(int32_t layer, int32_t block, int32_t slot, const float* k, const float* v) {
  const size_t hd = static_cast<size_t>(opt_.head_dim);
  for (int kv = 0; kv < 2; ++kv) {
    const float* src_all = kv == 0 ? k : v;
    for (int32_t h = 0; h < opt_.num_kv_heads; ++h) {
      const float* src = src_all + static_cast<size_t>(h) * hd;
      void* rows = headRows(block, layer, kv, h);
      switch (opt_.dtype) {
        case KvDType::kF32: {
          float* dst = static_cast<float*>(rows) + static_cast<size_t>(slot) * hd;
          for (size_t i = 0; i < hd; ++i) dst[i] = src[i];
          break;
        }
        case KvDType::kF16: {
          uint16_t* dst = static_cast<uint16_t*>(rows) + static_cast<size_t>(slot) * hd;
          for (size_t i = 0; i < hd; ++i) dst[i] = floatToF16(src[i]);
          break;
        }
        case KvDType::kBF16: {
          uint16_t* dst = static_cast<uint16_t*>(rows) + static_cast<size_t>(slot) * hd;
          for (size_t i = 0; i < hd; ++i) dst[i] = floatToBf16(src[i]);
          break;
        }
      }
    }
  }
}

const float* KvCache::readRowsF32(int32_t block, int32_t layer, int kv, int32_t kv_head, int32_t n,
                                  float* out) const {
  const void* rows = headRows(block, layer, kv, kv_head);
  if (opt_.dtype == KvDType::kF32) return static_cast<const float*>(rows);
  const int64_t count = int64_t{n} * opt_.head_dim;
  cpu::toF32(kvElementType(opt_.dtype), rows, count, out);
  return out;
}

}  // namespace turbine::engine
