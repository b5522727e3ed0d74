#include "model/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace turbine::model {
namespace {

using nlohmann::json;
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the format's own limit is 100 MB

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses one header entry into `t` (data pointer not yet set); `data_size` bounds the offsets.
Status parseEntry(const std::string& path, const std::string& name, const json& e,
                  uint64_t data_size, SafetensorsTensor* t, uint64_t* begin) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
      !e.contains("data_offsets")) {
    return invalidArgument(where + ": header entry needs dtype, shape and data_offsets");
  }
  const json& dt = e["dtype"];
  const json& shape = e["shape"];
  const json& off = e["data_offsets"];
  if (!dt.is_string()) return invalidArgument(where + ": dtype is not a string");
  t->name = name;
  t->dtype = dt.get<std::string>();
  size_t esize = safetensorsDtypeSize(t->dtype);
  if (esize == 0) return unimplemented(where + ": unknown dtype " + t->dtype);
  if (!shape.is_array()) return invalidArgument(where + ": shape is not an array");
  uint64_t numel = 1;
  for (const json& d : shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40)) {
      return invalidArgument(where + ": bad shape " + shape.dump());
    }
    t->shape.push_back(d.get<int64_t>());
    if (t->shape.back() != 0 && numel > (uint64_t{1} << 50) / t->shape.back()) {
      return invalidArgument(where + ": too many elements in shape " + shape.dump());
    }
    numel *= static_cast<uint64_t>(t->shape.back());
  }
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned()) {
    return invalidArgument(where + ": data_offsets must be two unsigned integers");
  }
  uint64_t b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (b > end || end > data_size) {
    return dataLoss(where + ": data_offsets [" + std::to_string(b) + "," + std::to_string(end) +
                    "] outside the " + std::to_string(data_size) +
                    " data bytes (truncated file?)");
  }
  if (end - b != numel * esize) {
    return invalidArgument(where + ": " + std::to_string(end - b) + " bytes for shape " +
                           shapeString(t->shape) + " of " + t->dtype + ", expected " +
                           std::to_string(numel * esize));
  }
  t->nbytes = static_cast<size_t>(end - b);
  *begin = b;
  return Status::ok();
}

Result<std::string> readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

size_t safetensorsDtypeSize(std::string_view d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  TURBINE_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  SafetensorsFile f;
  f.path_ = std::make_shared<std::string>(path);
  f.file_ = mf;
  if (mf->size() < 8) return dataLoss(path + ": file too short for a safetensors header");
  uint64_t header_len = 0;
  std::memcpy(&header_len, mf->data(), 8);
  if (header_len > kMaxHeaderBytes) {
    return invalidArgument(path + ": header length " + std::to_string(header_len) +
                           " is implausible (not a safetensors file?)");
  }
  if (header_len > mf->size() - 8) {
    return dataLoss(path + ": header of " + std::to_string(header_len) +
                    " bytes extends past end of file (truncated file?)");
  }
  json header;
  try {
    header = json::parse(mf->data() + 8, mf->data() + 8 + header_len);
  } catch (const json::exception& e) {
    return invalidArgument(path + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) return invalidArgument(path + ": header is not a JSON object");
  const uint8_t* data = mf->data() + 8 + header_len;
  const uint64_t data_size = mf->size() - 8 - header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) continue;
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (m.value().is_string()) f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsTensor t;
    uint64_t begin = 0;
    TURBINE_RETURN_IF_ERROR(parseEntry(path, it.key(), it.value(), data_size, &t, &begin));
    t.data = data + begin;
    t.file = f.path_.get();
    f.index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<SafetensorsCheckpoint> SafetensorsCheckpoint::open(const std::string& dir) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint ck;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    TURBINE_ASSIGN_OR_RETURN(std::string text, readText(index_path.string()));
    json index;
    try {
      index = json::parse(text);
    } catch (const json::exception& e) {
      return invalidArgument(index_path.string() + ": not valid JSON: " + e.what());
    }
    if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
      return invalidArgument(index_path.string() + ": key 'weight_map' missing or not an object");
    }
    std::set<std::string> shards;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) {
        return invalidArgument(index_path.string() + ": weight_map['" + it.key() +
                               "'] is not a string");
      }
      shards.insert(it.value().get<std::string>());
    }
    for (const std::string& shard : shards) {
      if (shard.find('/') != std::string::npos) {
        return invalidArgument(index_path.string() + ": shard name '" + shard + "' has a '/'");
      }
      TURBINE_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open((fs::path(dir) / shard).string()));
      ck.files_.push_back(std::move(f));
    }
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      const std::string shard = (fs::path(dir) / it.value().get<std::string>()).string();
      for (const auto& f : ck.files_) {
        if (f.path() != shard) continue;
        const SafetensorsTensor* t = f.find(it.key());
        if (t == nullptr) {
          return notFound(shard + ": tensor '" + it.key() + "' listed in " +
                          index_path.filename().string() + " is missing");
        }
        ck.index_[it.key()] = t;
      }
    }
    return ck;
  }
  if (!fs::exists(single, ec)) {
    return notFound(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  TURBINE_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(single.string()));
  ck.files_.push_back(std::move(f));
  for (const auto& t : ck.files_[0].tensors()) ck.index_[t.name] = &t;
  return ck;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<MappedFile>> SafetensorsCheckpoint::mappedFiles() const {
  std::vector<std::shared_ptr<MappedFile>> out;
  for (const auto& f : files_) out.push_back(f.file());
  return out;
}

Result<TensorView> safetensorsView(const SafetensorsTensor& t) {
  TensorView v;
  if (t.dtype == "F32") {
    v.dtype = DType::kF32;
  } else if (t.dtype == "F16") {
    v.dtype = DType::kF16;
  } else if (t.dtype == "BF16") {
    v.dtype = DType::kBF16;
  } else {
    return unimplemented((t.file ? *t.file : std::string("?")) + ": tensor '" + t.name +
                         "': dtype " + t.dtype + " not supported (F32, F16, BF16 are)");
  }
  v.name = t.name;
  v.shape = t.shape;
  v.data = t.data;
  v.nbytes = t.nbytes;
  return v;
}

}  // namespace turbine::model
