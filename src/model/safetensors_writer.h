// SafetensorsWriter: writes one .safetensors file, streaming tensor data. Usage:
//   SafetensorsWriter w;
//   w.addTensor("model.norm.weight", "F32", {hidden});   // declare every tensor first
//   TURBINE_RETURN_IF_ERROR(w.open(path));              // writes the header
//   w.writeTensorData(bytes) ...                        // in declaration order, any chunking
//   TURBINE_RETURN_IF_ERROR(w.close());                 // verifies every tensor is complete
// The header is JSON in declaration order, padded with spaces to a multiple of 8 bytes; tensors
// are stored back to back. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::model {

class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void addMetadata(const std::string& key, const std::string& value);
  // `dtype` is a safetensors dtype string ("F32", "F16", "BF16", ...). Returns the byte size.
  size_t addTensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape);
  // Sum of the byte sizes of the declared tensors.
  uint64_t dataBytes() const { return data_bytes_; }

  Status open(const std::string& path);
  Status writeTensorData(std::span<const uint8_t> bytes);
  Status close();

 private:
  struct Tensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<Tensor> tensors_;
  uint64_t data_bytes_ = 0;
  std::string path_;
  std::FILE* fp_ = nullptr;
  size_t current_ = 0;
  uint64_t current_done_ = 0;
};

}  // namespace turbine::model
