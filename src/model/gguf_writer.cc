#include "model/gguf_writer.h"

#include <cerrno>
#include <cstring>

namespace turbine::model {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;
constexpr uint32_t kGgufVersion = 3;

GgufValue arrayOf(GgufType elem, std::vector<GgufValue> items) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = elem;
  v.v = std::move(items);
  return v;
}

}  // namespace

size_t ggmlTensorBytes(GgmlType type, int64_t numel) {
  switch (type) {
    case GgmlType::kF32: return static_cast<size_t>(numel) * 4;
    case GgmlType::kF16:
    case GgmlType::kBF16: return static_cast<size_t>(numel) * 2;
    case GgmlType::kQ8_0: return static_cast<size_t>(numel / 32) * 34;
  }
  return 0;
}

GgufWriter::~GgufWriter() {
  if (fp_ != nullptr) std::fclose(fp_);
}

void GgufWriter::setAlignment(uint32_t alignment) {
  alignment_ = alignment;
  addUint32("general.alignment", alignment);
}

void GgufWriter::add(const std::string& key, GgufValue value) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::addString(const std::string& key, std::string value) {
  add(key, GgufValue{GgufType::kString, GgufType::kUint8, std::move(value)});
}
void GgufWriter::addUint32(const std::string& key, uint32_t value) {
  add(key, GgufValue{GgufType::kUint32, GgufType::kUint8, static_cast<int64_t>(value)});
}
void GgufWriter::addInt32(const std::string& key, int32_t value) {
  add(key, GgufValue{GgufType::kInt32, GgufType::kUint8, static_cast<int64_t>(value)});
}
void GgufWriter::addFloat32(const std::string& key, float value) {
  add(key, GgufValue{GgufType::kFloat32, GgufType::kUint8, static_cast<double>(value)});
}
void GgufWriter::addBool(const std::string& key, bool value) {
  add(key, GgufValue{GgufType::kBool, GgufType::kUint8, value});
}

void GgufWriter::addStringArray(const std::string& key, const std::vector<std::string>& values) {
  std::vector<GgufValue> items;
  items.reserve(values.size());
  for (const auto& s : values) items.push_back({GgufType::kString, GgufType::kUint8, s});
  add(key, arrayOf(GgufType::kString, std::move(items)));
}

void GgufWriter::addInt32Array(const std::string& key, const std::vector<int32_t>& values) {
  std::vector<GgufValue> items;
  items.reserve(values.size());
  for (int32_t x : values) {
    items.push_back({GgufType::kInt32, GgufType::kUint8, static_cast<int64_t>(x)});
  }
  add(key, arrayOf(GgufType::kInt32, std::move(items)));
}

void GgufWriter::addFloat32Array(const std::string& key, const std::vector<float>& values) {
  std::vector<GgufValue> items;
  items.reserve(values.size());
  for (float x : values) {
    items.push_back({GgufType::kFloat32, GgufType::kUint8, static_cast<double>(x)});
  }
  add(key, arrayOf(GgufType::kFloat32, std::move(items)));
}

size_t GgufWriter::addTensor(const std::string& name, std::vector<int64_t> ne, GgmlType type) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  size_t nbytes = ggmlTensorBytes(type, n);
  uint64_t offset = 0;
  if (!tensors_.empty()) {
    const Tensor& last = tensors_.back();
    offset = (last.offset + last.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  tensors_.push_back({name, std::move(ne), type, nbytes, offset});
  return nbytes;
}

Status GgufWriter::writeRaw(const void* p, size_t n) {
  if (n == 0) return Status::ok();
  if (std::fwrite(p, 1, n, fp_) != n) {
    return ioError(path_ + ": write failed: " + std::strerror(errno));
  }
  pos_ += n;
  return Status::ok();
}

Status GgufWriter::writeString(const std::string& s) {
  uint64_t len = s.size();
  TURBINE_RETURN_IF_ERROR(writeRaw(&len, 8));
  return writeRaw(s.data(), s.size());
}

Status GgufWriter::writeValue(const GgufValue& v) {
  auto asInt = [&] { return std::get<int64_t>(v.v); };
  switch (v.type) {
    case GgufType::kUint8: case GgufType::kInt8: {
      auto x = static_cast<uint8_t>(asInt());
      return writeRaw(&x, 1);
    }
    case GgufType::kUint16: case GgufType::kInt16: {
      auto x = static_cast<uint16_t>(asInt());
      return writeRaw(&x, 2);
    }
    case GgufType::kUint32: case GgufType::kInt32: {
      auto x = static_cast<uint32_t>(asInt());
      return writeRaw(&x, 4);
    }
    case GgufType::kUint64: case GgufType::kInt64: {
      auto x = static_cast<uint64_t>(asInt());
      return writeRaw(&x, 8);
    }
    case GgufType::kFloat32: {
      auto x = static_cast<float>(std::get<double>(v.v));
      return writeRaw(&x, 4);
    }
    case GgufType::kFloat64: {
      double x = std::get<double>(v.v);
      return writeRaw(&x, 8);
    }
    case GgufType::kBool: {
      uint8_t x = std::get<bool>(v.v) ? 1 : 0;
      return writeRaw(&x, 1);
    }
    case GgufType::kString: return writeString(std::get<std::string>(v.v));
    case GgufType::kArray: {
      const auto& items = std::get<std::vector<GgufValue>>(v.v);
      auto elem = static_cast<uint32_t>(v.elem_type);
      uint64_t n = items.size();
      TURBINE_RETURN_IF_ERROR(writeRaw(&elem, 4));
      TURBINE_RETURN_IF_ERROR(writeRaw(&n, 8));
      for (const auto& item : items) TURBINE_RETURN_IF_ERROR(writeValue(item));
      return Status::ok();
    }
  }
  return internalError(path_ + ": unknown GGUF value type");
}

Status GgufWriter::pad() {
  static const uint8_t kZeros[256] = {};
  uint64_t target = (pos_ + alignment_ - 1) / alignment_ * alignment_;
  while (pos_ < target) {
    TURBINE_RETURN_IF_ERROR(writeRaw(kZeros, std::min<uint64_t>(target - pos_, sizeof kZeros)));
  }
  return Status::ok();
}

Status GgufWriter::open(const std::string& path) {
  path_ = path;
  fp_ = std::fopen(path.c_str(), "wb");
  if (fp_ == nullptr) return ioError(path + ": cannot create: " + std::strerror(errno));
  std::setvbuf(fp_, nullptr, _IOFBF, 1 << 20);
  uint32_t header[2] = {kGgufMagic, kGgufVersion};
  uint64_t counts[2] = {tensors_.size(), kv_.size()};
  TURBINE_RETURN_IF_ERROR(writeRaw(header, sizeof header));
  TURBINE_RETURN_IF_ERROR(writeRaw(counts, sizeof counts));
  for (const auto& [key, value] : kv_) {
    TURBINE_RETURN_IF_ERROR(writeString(key));
    auto type = static_cast<uint32_t>(value.type);
    TURBINE_RETURN_IF_ERROR(writeRaw(&type, 4));
    TURBINE_RETURN_IF_ERROR(writeValue(value));
  }
  for (const Tensor& t : tensors_) {
    TURBINE_RETURN_IF_ERROR(writeString(t.name));
    auto n_dims = static_cast<uint32_t>(t.ne.size());
    TURBINE_RETURN_IF_ERROR(writeRaw(&n_dims, 4));
    for (int64_t d : t.ne) {
      auto x = static_cast<uint64_t>(d);
      TURBINE_RETURN_IF_ERROR(writeRaw(&x, 8));
    }
    auto type = static_cast<uint32_t>(t.type);
    TURBINE_RETURN_IF_ERROR(writeRaw(&type, 4));
    TURBINE_RETURN_IF_ERROR(writeRaw(&t.offset, 8));
  }
  TURBINE_RETURN_IF_ERROR(pad());
  pos_ = 0;  // from here on, positions are relative to the data section (aligned)
  return Status::ok();
}

Status GgufWriter::writeTensorData(std::span<const uint8_t> bytes) {
  if (fp_ == nullptr) return failedPrecondition(path_ + ": writer is not open");
  if (current_ >= tensors_.size()) {
    return failedPrecondition(path_ + ": more tensor data than declared tensors");
  }
  const Tensor& t = tensors_[current_];
  if (current_done_ == 0) TURBINE_RETURN_IF_ERROR(pad());
  if (bytes.size() > t.nbytes - current_done_) {
    return invalidArgument(path_ + ": tensor '" + t.name + "': chunk of " +
                           std::to_string(bytes.size()) + " bytes overruns its " +
                           std::to_string(t.nbytes) + " bytes");
  }
  TURBINE_RETURN_IF_ERROR(writeRaw(bytes.data(), bytes.size()));
  current_done_ += bytes.size();
  if (current_done_ == t.nbytes) {
    ++current_;
    current_done_ = 0;
  }
  return Status::ok();
}

Status GgufWriter::close() {
  if (fp_ == nullptr) return failedPrecondition(path_ + ": writer is not open");
  Status st;
  if (current_ != tensors_.size()) {
    st = failedPrecondition(path_ + ": tensor '" + tensors_[current_].name +
                            "': data not written");
  }
  if (std::fclose(fp_) != 0 && st.isOk()) {
    st = ioError(path_ + ": close failed: " + std::strerror(errno));
  }
  fp_ = nullptr;
  return st;
}

}  // namespace turbine::model
