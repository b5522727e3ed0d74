// KvCache: the KV memory of one model: one pool of fixed-size blocks, each holding the keys and
// values of `block_size` consecutive token positions of one sequence, for every layer.
//
// Memory layout (one AnonymousMemory mapping, on 2 MiB pages where the kernel gives them, zero-
// filled lazily by the OS; 4 KiB pages, one per (block, layer, K/V, head) faulted in one token
// at a time, cost a medium decode step ~0.3 ms of page faults in a VM):
//   pool[block][layer][K=0|V=1][kv_head][slot][head_dim]      elements of `dtype`
// so that one block, all layers, is one contiguous run of bytesPerBlock() bytes (what the KV
// block manager offloads and the transfer agent ships), and within a block one head's keys of
// consecutive slots are contiguous rows of head_dim (what attention streams over).
//
// Which block belongs to which sequence is not known here: the scheduler owns the block tables
// (engine/batch.h) and hands them to the model runner each step.
// Thread safety: none internally. Concurrent writes to different (block, layer, head, slot)
// cells and concurrent reads are safe; the runner orders writes before the reads of a step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "common/anonymous_memory.h"
#include "common/status.h"
#include "model/weights.h"

namespace turbine::engine {

enum class KvDType { kF32, kF16, kBF16 };
const char* kvDTypeName(KvDType t);
// The type kvDTypeName() names ("f32", "f16", "bf16"); nullopt for any other string.
std::optional<KvDType> kvDTypeFromName(std::string_view name);
size_t kvDTypeBytes(KvDType t);
// The element type as the kernels name it (cpu::attendDecode, cpu::toF32).
model::DType kvElementType(KvDType t);

struct KvCacheOptions {
  int32_t num_layers = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 16;  // token positions per block
  // Pool size: num_blocks if > 0, else as many blocks as fit in memory_bytes (> 0 required).
  int32_t num_blocks = 0;
  size_t memory_bytes = 0;
  KvDType dtype = KvDType::kF32;  // storage type; attention always computes in f32
};

class KvCache {
 public:
  // InvalidArgument on a non-positive dimension or an empty pool; ResourceExhausted when the
  // memory cannot be mapped.
  static Result<std::unique_ptr<KvCache>> create(const KvCacheOptions& options);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int32_t numBlocks() const { return num_blocks_; }
  int32_t blockSize() const { return opt_.block_size; }
  int32_t numLayers() const { return opt_.num_layers; }
  int32_t numKvHeads() const { return opt_.num_kv_heads; }
  int32_t headDim() const { return opt_.head_dim; }
  KvDType dtype() const { return opt_.dtype; }
  size_t bytesPerBlock() const { return block_elems_ * kvDTypeBytes(opt_.dtype); }
  size_t totalBytes() const { return bytesPerBlock() * static_cast<size_t>(num_blocks_); }
  // Bytes of one token's K and V, all layers (for sizing from a budget).
  static size_t bytesPerToken(const KvCacheOptions& options);

  // Start of the [block_size][head_dim] rows of keys (kv = 0) or values (kv = 1) of one head.
  // The element type is dtype(). No bounds checks: callers validate block ids.
  void* headRows(int32_t block, int32_t layer, int kv, int32_t kv_head) {
    return base_ + offsetElems(block, layer, kv, kv_head) * kvDTypeBytes(opt_.dtype);
  }
  const void* headRows(int32_t block, int32_t layer, int kv, int32_t kv_head) const {
    return base_ + offsetElems(block, layer, kv, kv_head) * kvDTypeBytes(opt_.dtype);
  }
  // Elements from one kv head's rows to the next head's in a block (block_size * head_dim).
  size_t headStride() const { return head_elems_; }
  // The whole block (all layers), bytesPerBlock() bytes.
  uint8_t* blockData(int32_t block) { return base_ + static_cast<size_t>(block) * bytesPerBlock(); }

  // Stores one token's keys and values of one layer, [num_kv_heads][head_dim] f32 each,
  // at `slot` of `block`, converting to dtype().
  void store(int32_t layer, int32_t block, int32_t slot, const float* k, const float* v);

  // Copies `n` rows (slots [0, n)) of one head's K or V into `out` as f32 [n][head_dim].
  // Returns the f32 rows themselves without copying when dtype() is kF32.
  const float* readRowsF32(int32_t block, int32_t layer, int kv, int32_t kv_head, int32_t n,
                           float* out) const;

 private:
  KvCache(const KvCacheOptions& options, int32_t num_blocks, AnonymousMemory memory);
  size_t offsetElems(int32_t block, int32_t layer, int kv, int32_t kv_head) const {
    return static_cast<size_t>(block) * block_elems_ +
           ((static_cast<size_t>(layer) * 2 + static_cast<size_t>(kv)) * opt_.num_kv_heads +
            static_cast<size_t>(kv_head)) *
               head_elems_;
  }

  KvCacheOptions opt_;
  int32_t num_blocks_ = 0;
  size_t head_elems_ = 0;   // block_size * head_dim
  size_t block_elems_ = 0;  // num_layers * 2 * num_kv_heads * head_elems_
  AnonymousMemory memory_;
  uint8_t* base_ = nullptr;  // memory_.data()
};

}  // namespace turbine::engine
