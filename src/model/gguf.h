// GgufFile: a validated, memory-mapped GGUF (v2/v3) file: header, metadata key/values, tensor
// infos and tensor data. Spec: github.com/ggml-org/ggml docs/gguf.md.
// Thread safety: immutable after open(); safe to read from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"

namespace turbine::model {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

// ggml tensor types that Turbine reads (others are rejected with Unimplemented, naming the tensor).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ8_0 = 8, kBF16 = 30 };

// One metadata value. Integers of every width are held as int64 (uint64 beyond INT64_MAX is
// rejected), floats as double. Arrays hold their elements (arrays of arrays are kept but rarely
// used by models).
struct GgufValue {
  GgufType type = GgufType::kUint8;
  GgufType elem_type = GgufType::kUint8;  // for kArray
  std::variant<int64_t, double, bool, std::string, std::vector<GgufValue>> v;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;     // GGUF order: ne[0] is the innermost (contiguous) dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;         // relative to the start of the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class GgufFile {
 public:
  // Maps and validates `path`: magic, version, counts, every string and array bound, tensor
  // types and that every tensor's bytes lie inside the file. Errors name the file and the key or
  // tensor ("model.gguf: tensor 'blk.3.attn_q.weight': data extends past end of file").
  static Result<GgufFile> open(const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  uint64_t alignment() const { return alignment_; }

  const GgufValue* find(std::string_view key) const;
  // Typed getters: NotFound naming the key when absent, InvalidArgument when of another type.
  Result<std::string> getString(std::string_view key) const;
  Result<int64_t> getInt(std::string_view key) const;
  Result<double> getFloat(std::string_view key) const;  // accepts any numeric type
  Result<bool> getBool(std::string_view key) const;
  Result<std::vector<std::string>> getStringArray(std::string_view key) const;
  Result<std::vector<int64_t>> getIntArray(std::string_view key) const;
  Result<std::vector<double>> getFloatArray(std::string_view key) const;
  const std::vector<std::string>& keys() const { return keys_; }  // in file order

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* findTensor(std::string_view name) const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace turbine::model
