#include "model/safetensors_writer.h"

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"

namespace turbine::model {

SafetensorsWriter::~SafetensorsWriter() {
  if (fp_ != nullptr) std::fclose(fp_);
}

void SafetensorsWriter::addMetadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

size_t SafetensorsWriter::addTensor(const std::string& name, const std::string& dtype,
                                    std::vector<int64_t> shape) {
  uint64_t n = safetensorsDtypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  tensors_.push_back({name, dtype, std::move(shape), data_bytes_, data_bytes_ + n});
  data_bytes_ += n;
  return static_cast<size_t>(n);
}

Status SafetensorsWriter::open(const std::string& path) {
  path_ = path;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  for (const Tensor& t : tensors_) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {t.begin, t.end}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  fp_ = std::fopen(path.c_str(), "wb");
  if (fp_ == nullptr) return ioError(path + ": cannot create: " + std::strerror(errno));
  std::setvbuf(fp_, nullptr, _IOFBF, 1 << 20);
  uint64_t len = text.size();
  if (std::fwrite(&len, 8, 1, fp_) != 1 || std::fwrite(text.data(), 1, len, fp_) != len) {
    return ioError(path + ": write failed: " + std::strerror(errno));
  }
  while (current_ < tensors_.size() && tensors_[current_].begin == tensors_[current_].end) {
    ++current_;  // empty tensors need no data
  }
  return Status::ok();
}

Status SafetensorsWriter::writeTensorData(std::span<const uint8_t> bytes) {
  if (fp_ == nullptr) return failedPrecondition(path_ + ": writer is not open");
  if (current_ >= tensors_.size()) {
    return failedPrecondition(path_ + ": more tensor data than declared tensors");
  }
  const Tensor& t = tensors_[current_];
  if (bytes.size() > t.end - t.begin - current_done_) {
    return invalidArgument(path_ + ": tensor '" + t.name + "': chunk of " +
                           std::to_string(bytes.size()) + " bytes overruns its " +
                           std::to_string(t.end - t.begin) + " bytes");
  }
  if (std::fwrite(bytes.data(), 1, bytes.size(), fp_) != bytes.size()) {
    return ioError(path_ + ": write failed: " + std::strerror(errno));
  }
  current_done_ += bytes.size();
  while (current_ < tensors_.size() &&
         current_done_ == tensors_[current_].end - tensors_[current_].begin) {
    ++current_;
    current_done_ = 0;
  }
  return Status::ok();
}

Status SafetensorsWriter::close() {
  if (fp_ == nullptr) return failedPrecondition(path_ + ": writer is not open");
  Status st;
  if (current_ != tensors_.size()) {
    st = failedPrecondition(path_ + ": tensor '" + tensors_[current_].name + "': data not written");
  }
  if (std::fclose(fp_) != 0 && st.isOk()) {
    st = ioError(path_ + ": close failed: " + std::strerror(errno));
  }
  fp_ = nullptr;
  return st;
}

}  // namespace turbine::model
