// GgufWriter: writes a GGUF v3 file, streaming tensor data so that a model never has to be held
// in memory whole. Usage:
//   GgufWriter w;                       // alignment 32 unless setAlignment()
//   w.addString("general.architecture", "llama"); ...
//   w.addTensor("token_embd.weight", {hidden, vocab}, GgmlType::kF16);   // GGUF order: ne[0] inner
//   TURBINE_RETURN_IF_ERROR(w.open(path));       // header, metadata, tensor infos, padding
//   w.writeTensorData(bytes) ...                  // tensors in declaration order, any chunking
//   TURBINE_RETURN_IF_ERROR(w.close());           // verifies every tensor got all its bytes
// Metadata and tensors must all be declared before open(). Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/gguf.h"

namespace turbine::model {

// Bytes of a tensor of `type` with `numel` elements (numel a multiple of 32 for Q8_0).
size_t ggmlTensorBytes(GgmlType type, int64_t numel);

class GgufWriter {
 public:
  GgufWriter() = default;
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Also records `general.alignment` (uint32) in the metadata. Must be a power of two.
  void setAlignment(uint32_t alignment);

  // Metadata, written in the order added. A key added twice keeps its last value.
  void add(const std::string& key, GgufValue value);
  void addString(const std::string& key, std::string value);
  void addUint32(const std::string& key, uint32_t value);
  void addInt32(const std::string& key, int32_t value);
  void addFloat32(const std::string& key, float value);
  void addBool(const std::string& key, bool value);
  void addStringArray(const std::string& key, const std::vector<std::string>& values);
  void addInt32Array(const std::string& key, const std::vector<int32_t>& values);
  void addFloat32Array(const std::string& key, const std::vector<float>& values);

  // Declares a tensor; `ne` in GGUF order (ne[0] innermost). Returns its byte size.
  size_t addTensor(const std::string& name, std::vector<int64_t> ne, GgmlType type);

  Status open(const std::string& path);
  // Appends bytes to the current tensor; moves to the next one when it is full. A chunk may not
  // span two tensors.
  Status writeTensorData(std::span<const uint8_t> bytes);
  Status close();

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    size_t nbytes;
    uint64_t offset;
  };
  Status writeRaw(const void* p, size_t n);
  Status writeValue(const GgufValue& v);
  Status writeString(const std::string& s);
  Status pad();

  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
  std::string path_;
  std::FILE* fp_ = nullptr;
  uint64_t pos_ = 0;
  size_t current_ = 0;       // tensor being written
  size_t current_done_ = 0;  // bytes of it written so far
};

}  // namespace turbine::model
