// Safetensors reader: memory-maps .safetensors files and validates their header.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {...}}, then the data; offsets are relative to the data start.
// A checkpoint is one file (model.safetensors) or several, listed by model.safetensors.index.json
// ("weight_map": {tensor name: file name}).
// Thread safety: immutable after open(); safe to read from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"
#include "model/weights.h"

namespace turbine::model {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;            // as in the file: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;   // row-major, outermost first
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  const std::string* file = nullptr;  // path of the file holding it (owned by the file object)
};

class SafetensorsFile {
 public:
  // Validates the header: JSON syntax, every entry's dtype, shape and offsets (inside the data,
  // size = numel × element size). Dtypes of unknown element size are Unimplemented, naming the
  // tensor and the dtype.
  static Result<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return *path_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<std::string> path_;  // stable address for SafetensorsTensor::file
  std::shared_ptr<MappedFile> file_;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a Hugging Face checkpoint folder, single-file or sharded.
class SafetensorsCheckpoint {
 public:
  // `dir` holds model.safetensors, or model.safetensors.index.json and its shards. Every tensor
  // the index names must be in the shard it names.
  static Result<SafetensorsCheckpoint> open(const std::string& dir);

  const SafetensorsTensor* find(std::string_view name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  std::vector<std::shared_ptr<MappedFile>> mappedFiles() const;

 private:
  std::vector<SafetensorsFile> files_;
  std::unordered_map<std::string, const SafetensorsTensor*> index_;
};

// A TensorView of a safetensors tensor: F32, F16 and BF16 only (others are Unimplemented,
// naming the file, the tensor and its dtype).
Result<TensorView> safetensorsView(const SafetensorsTensor& t);

// Element size of a safetensors dtype string; 0 when unknown.
size_t safetensorsDtypeSize(std::string_view dtype);

}  // namespace turbine::model
