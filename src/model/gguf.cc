// GGUF reader: parses and validates the header, metadata and tensor infos of a mapped file.
// Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv × {string key,
// u32 type, value}, n_tensors × {string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset},
// padding to `general.alignment` (default 32), then the data section.
#include "model/gguf.h"

#include <cstring>
#include <limits>

namespace turbine::model {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr int kMaxArrayDepth = 4;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Block size (elements) and bytes per block of a ggml type; {0,0} when unknown. Known types
// beyond the four Turbine computes with are sized so that any file can be opened (e.g. to read
// its tokenizer); the loader rejects them.
struct GgmlTypeSize {
  int64_t block;
  int64_t bytes;
};
GgmlTypeSize ggmlTypeSize(uint32_t t) {
  switch (t) {
    case 0: return {1, 4};      // F32
    case 1: return {1, 2};      // F16
    case 2: return {32, 18};    // Q4_0
    case 3: return {32, 20};    // Q4_1
    case 6: return {32, 22};    // Q5_0
    case 7: return {32, 24};    // Q5_1
    case 8: return {32, 34};    // Q8_0
    case 9: return {32, 36};    // Q8_1
    case 10: return {256, 84};  // Q2_K
    case 11: return {256, 110}; // Q3_K
    case 12: return {256, 144}; // Q4_K
    case 13: return {256, 176}; // Q5_K
    case 14: return {256, 210}; // Q6_K
    case 15: return {256, 292}; // Q8_K
    case 16: return {256, 66};  // IQ2_XXS
    case 17: return {256, 74};  // IQ2_XS
    case 18: return {256, 98};  // IQ3_XXS
    case 19: return {256, 50};  // IQ1_S
    case 20: return {32, 18};   // IQ4_NL
    case 21: return {256, 110}; // IQ3_S
    case 22: return {256, 82};  // IQ2_S
    case 23: return {256, 136}; // IQ4_XS
    case 24: return {1, 1};     // I8
    case 25: return {1, 2};     // I16
    case 26: return {1, 4};     // I32
    case 27: return {1, 8};     // I64
    case 28: return {1, 8};     // F64
    case 29: return {256, 56};  // IQ1_M
    case 30: return {1, 2};     // BF16
    case 34: return {256, 54};  // TQ1_0
    case 35: return {256, 66};  // TQ2_0
    case 39: return {32, 17};   // MXFP4
    default: return {0, 0};
  }
}

// Bounds-checked reader over the mapped bytes. Every read failure becomes a DataLoss naming
// the file and `what` (the key or tensor being parsed).
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, size_t size)
      : path_(path), data_(data), size_(size) {}

  const std::string& path() const { return path_; }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Status truncated(const std::string& what) const {
    return dataLoss(path_ + ": " + what + ": file truncated at byte " + std::to_string(size_));
  }

  template <typename T>
  Status read(T* out, const std::string& what) {
    if (remaining() < sizeof(T)) return truncated(what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::ok();
  }

  Status readString(std::string* out, const std::string& what) {
    uint64_t len = 0;
    TURBINE_RETURN_IF_ERROR(read(&len, what));
    if (len > remaining()) return truncated(what);
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::ok();
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Smallest encoded size of one value of `t` (used to reject absurd array lengths early).
size_t minEncodedSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kString: return 8;
    case GgufType::kArray: return 12;
    default: return 8;
  }
}

bool validType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

const char* typeName(GgufType t) {
  static const char* const kNames[] = {"uint8", "int8",  "uint16", "int16", "uint32",
                                       "int32", "float32", "bool", "string", "array",
                                       "uint64", "int64", "float64"};
  auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "?";
}

Status readValue(Cursor& c, GgufType type, GgufValue* out, const std::string& what, int depth);

template <typename T>
Status readInt(Cursor& c, GgufValue* out, const std::string& what) {
  T x{};
  TURBINE_RETURN_IF_ERROR(c.read(&x, what));
  out->v = static_cast<int64_t>(x);
  return Status::ok();
}

Status readArray(Cursor& c, GgufValue* out, const std::string& what, int depth) {
  const std::string& path = c.path();
  if (depth >= kMaxArrayDepth) {
    return invalidArgument(path + ": " + what + ": arrays nested too deeply");
  }
  uint32_t elem = 0;
  uint64_t n = 0;
  TURBINE_RETURN_IF_ERROR(c.read(&elem, what));
  if (!validType(elem)) {
    return invalidArgument(path + ": " + what + ": unknown array element type " +
                           std::to_string(elem));
  }
  TURBINE_RETURN_IF_ERROR(c.read(&n, what));
  out->elem_type = static_cast<GgufType>(elem);
  if (n > c.remaining() / minEncodedSize(out->elem_type)) return c.truncated(what);
  std::vector<GgufValue> items(static_cast<size_t>(n));
  for (auto& item : items) {
    item.type = out->elem_type;
    TURBINE_RETURN_IF_ERROR(readValue(c, out->elem_type, &item, what, depth + 1));
  }
  out->v = std::move(items);
  return Status::ok();
}

Status readValue(Cursor& c, GgufType type, GgufValue* out, const std::string& what, int depth) {
  const std::string& path = c.path();
  out->type = type;
  switch (type) {
    case GgufType::kUint8: return readInt<uint8_t>(c, out, what);
    case GgufType::kInt8: return readInt<int8_t>(c, out, what);
    case GgufType::kUint16: return readInt<uint16_t>(c, out, what);
    case GgufType::kInt16: return readInt<int16_t>(c, out, what);
    case GgufType::kUint32: return readInt<uint32_t>(c, out, what);
    case GgufType::kInt32: return readInt<int32_t>(c, out, what);
    case GgufType::kInt64: return readInt<int64_t>(c, out, what);
    case GgufType::kUint64: {
      uint64_t x = 0;
      TURBINE_RETURN_IF_ERROR(c.read(&x, what));
      if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return outOfRange(path + ": " + what + ": uint64 value " + std::to_string(x) +
                          " exceeds int64");
      }
      out->v = static_cast<int64_t>(x);
      return Status::ok();
    }
    case GgufType::kFloat32: {
      float x = 0;
      TURBINE_RETURN_IF_ERROR(c.read(&x, what));
      out->v = static_cast<double>(x);
      return Status::ok();
    }
    case GgufType::kFloat64: {
      double x = 0;
      TURBINE_RETURN_IF_ERROR(c.read(&x, what));
      out->v = x;
      return Status::ok();
    }
    case GgufType::kBool: {
      uint8_t x = 0;
      TURBINE_RETURN_IF_ERROR(c.read(&x, what));
      if (x > 1) return invalidArgument(path + ": " + what + ": bool value " + std::to_string(x));
      out->v = x != 0;
      return Status::ok();
    }
    case GgufType::kString: {
      std::string s;
      TURBINE_RETURN_IF_ERROR(c.readString(&s, what));
      out->v = std::move(s);
      return Status::ok();
    }
    case GgufType::kArray: return readArray(c, out, what, depth);
  }
  return invalidArgument(path + ": " + what + ": unknown value type");
}

uint64_t alignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

Status parseMetadata(Cursor& c, uint64_t n_kv, std::vector<std::string>* keys,
                     std::unordered_map<std::string, GgufValue>* kv) {
  const std::string& path = c.path();
  if (n_kv > c.remaining() / 12) return c.truncated("metadata count " + std::to_string(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    TURBINE_RETURN_IF_ERROR(c.readString(&key, "metadata key #" + std::to_string(i)));
    const std::string what = "key '" + key + "'";
    uint32_t type = 0;
    TURBINE_RETURN_IF_ERROR(c.read(&type, what));
    if (!validType(type)) {
      return invalidArgument(path + ": " + what + ": unknown value type " + std::to_string(type));
    }
    GgufValue value;
    TURBINE_RETURN_IF_ERROR(readValue(c, static_cast<GgufType>(type), &value, what, 0));
    if (kv->count(key)) return invalidArgument(path + ": " + what + ": duplicate key");
    keys->push_back(key);
    kv->emplace(key, std::move(value));
  }
  return Status::ok();
}

Status parseTensorInfos(Cursor& c, uint64_t n_tensors, std::vector<GgufTensorInfo>* tensors,
                        std::unordered_map<std::string, size_t>* index) {
  const std::string& path = c.path();
  if (n_tensors > c.remaining() / 24) {
    return c.truncated("tensor count " + std::to_string(n_tensors));
  }
  tensors->resize(static_cast<size_t>(n_tensors));
  for (size_t i = 0; i < tensors->size(); ++i) {
    GgufTensorInfo& t = (*tensors)[i];
    TURBINE_RETURN_IF_ERROR(c.readString(&t.name, "tensor info #" + std::to_string(i)));
    const std::string what = "tensor '" + t.name + "'";
    uint32_t n_dims = 0;
    TURBINE_RETURN_IF_ERROR(c.read(&n_dims, what));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return invalidArgument(path + ": " + what + ": bad number of dimensions " +
                             std::to_string(n_dims));
    }
    t.ne.resize(n_dims);
    for (auto& d : t.ne) {
      uint64_t x = 0;
      TURBINE_RETURN_IF_ERROR(c.read(&x, what));
      if (x == 0 || x > (1ull << 40)) {
        return invalidArgument(path + ": " + what + ": bad dimension " + std::to_string(x));
      }
      d = static_cast<int64_t>(x);
    }
    TURBINE_RETURN_IF_ERROR(c.read(&t.ggml_type, what));
    TURBINE_RETURN_IF_ERROR(c.read(&t.offset, what));
    if (!index->emplace(t.name, i).second) {
      return invalidArgument(path + ": " + what + ": duplicate tensor name");
    }
  }
  return Status::ok();
}

// Sizes each tensor from its type and dimensions and points it into the data section, checking
// that its bytes lie inside the file.
Status placeTensor(const std::string& path, const MappedFile& mf, uint64_t data_start,
                   uint64_t alignment, GgufTensorInfo* t) {
  const std::string what = "tensor '" + t->name + "'";
  GgmlTypeSize ts = ggmlTypeSize(t->ggml_type);
  if (ts.block == 0) {
    return unimplemented(path + ": " + what + ": unknown ggml type " +
                         std::to_string(t->ggml_type));
  }
  if (t->ne[0] % ts.block != 0) {
    return invalidArgument(path + ": " + what + ": innermost dimension " +
                           std::to_string(t->ne[0]) + " is not a multiple of the block size " +
                           std::to_string(ts.block));
  }
  // Each dimension is < 2^40 and there are at most 4; guard the product against overflow.
  uint64_t n = 1;
  for (int64_t d : t->ne) {
    if (n > (1ull << 48) / static_cast<uint64_t>(d)) {
      return invalidArgument(path + ": " + what + ": too many elements");
    }
    n *= static_cast<uint64_t>(d);
  }
  const uint64_t nbytes = n / static_cast<uint64_t>(ts.block) * static_cast<uint64_t>(ts.bytes);
  if (t->offset % alignment != 0) {
    return invalidArgument(path + ": " + what + ": offset " + std::to_string(t->offset) +
                           " is not a multiple of the alignment " + std::to_string(alignment));
  }
  if (t->offset > mf.size() || data_start > mf.size() - t->offset ||
      nbytes > mf.size() - data_start - t->offset) {
    return dataLoss(path + ": " + what + ": data extends past end of file");
  }
  t->nbytes = static_cast<size_t>(nbytes);
  t->data = mf.data() + data_start + t->offset;
  return Status::ok();
}

}  // namespace

Result<GgufFile> GgufFile::open(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  GgufFile f;
  f.path_ = path;
  f.file_ = mf;
  Cursor c(f.path_, mf->data(), mf->size());
  uint32_t magic = 0;
  if (mf->size() < 4) return dataLoss(path + ": file too short for a GGUF header");
  TURBINE_RETURN_IF_ERROR(c.read(&magic, "magic"));
  if (magic != kGgufMagic) return invalidArgument(path + ": bad magic, not a GGUF file");
  TURBINE_RETURN_IF_ERROR(c.read(&f.version_, "header"));
  if (f.version_ != 2 && f.version_ != 3) {
    return unimplemented(path + ": GGUF version " + std::to_string(f.version_) +
                         " not supported (2 and 3 are)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  TURBINE_RETURN_IF_ERROR(c.read(&n_tensors, "header"));
  TURBINE_RETURN_IF_ERROR(c.read(&n_kv, "header"));
  TURBINE_RETURN_IF_ERROR(parseMetadata(c, n_kv, &f.keys_, &f.kv_));
  if (const GgufValue* a = f.find("general.alignment")) {
    const int64_t* v = std::get_if<int64_t>(&a->v);
    if (v == nullptr || *v <= 0 || (*v & (*v - 1)) != 0) {
      return invalidArgument(path + ": key 'general.alignment': must be a power of two integer");
    }
    f.alignment_ = static_cast<uint64_t>(*v);
  }
  TURBINE_RETURN_IF_ERROR(parseTensorInfos(c, n_tensors, &f.tensors_, &f.tensor_index_));
  const uint64_t data_start = alignUp(c.pos(), f.alignment_);
  for (GgufTensorInfo& t : f.tensors_) {
    TURBINE_RETURN_IF_ERROR(placeTensor(path, *mf, data_start, f.alignment_, &t));
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(std::string(key));
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {

Status missing(const std::string& path, std::string_view key) {
  return notFound(path + ": key '" + std::string(key) + "' not found");
}

Status wrongType(const std::string& path, std::string_view key, const GgufValue& v,
                 const char* want) {
  std::string got = typeName(v.type);
  if (v.type == GgufType::kArray) got += std::string(" of ") + typeName(v.elem_type);
  return invalidArgument(path + ": key '" + std::string(key) + "': expected " + want + ", got " +
                         got);
}

bool isNumeric(GgufType t) {
  return t != GgufType::kString && t != GgufType::kArray && t != GgufType::kBool;
}

}  // namespace

Result<std::string> GgufFile::getString(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != GgufType::kString) return wrongType(path_, key, *v, "string");
  return std::get<std::string>(v->v);
}

Result<int64_t> GgufFile::getInt(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  const int64_t* i = std::get_if<int64_t>(&v->v);
  if (i == nullptr || v->type == GgufType::kArray) return wrongType(path_, key, *v, "integer");
  return *i;
}

Result<double> GgufFile::getFloat(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (!isNumeric(v->type)) return wrongType(path_, key, *v, "number");
  if (const double* d = std::get_if<double>(&v->v)) return *d;
  return static_cast<double>(std::get<int64_t>(v->v));
}

Result<bool> GgufFile::getBool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != GgufType::kBool) return wrongType(path_, key, *v, "bool");
  return std::get<bool>(v->v);
}

Result<std::vector<std::string>> GgufFile::getStringArray(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString) {
    return wrongType(path_, key, *v, "array of string");
  }
  const auto& items = std::get<std::vector<GgufValue>>(v->v);
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(std::get<std::string>(item.v));
  return out;
}

Result<std::vector<int64_t>> GgufFile::getIntArray(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != GgufType::kArray || !isNumeric(v->elem_type) ||
      v->elem_type == GgufType::kFloat32 || v->elem_type == GgufType::kFloat64) {
    return wrongType(path_, key, *v, "array of integer");
  }
  const auto& items = std::get<std::vector<GgufValue>>(v->v);
  std::vector<int64_t> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(std::get<int64_t>(item.v));
  return out;
}

Result<std::vector<double>> GgufFile::getFloatArray(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != GgufType::kArray || !isNumeric(v->elem_type)) {
    return wrongType(path_, key, *v, "array of number");
  }
  const auto& items = std::get<std::vector<GgufValue>>(v->v);
  std::vector<double> out;
  out.reserve(items.size());
  for (const auto& item : items) {
    if (const double* d = std::get_if<double>(&item.v)) {
      out.push_back(*d);
    } else {
      out.push_back(static_cast<double>(std::get<int64_t>(item.v)));
    }
  }
  return out;
}

const GgufTensorInfo* GgufFile::findTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace turbine::model
