// JSON form of a discovery record (DESIGN.md §3.5).
#include <nlohmann/json.hpp>

#include "runtime/discovery.h"

namespace turbine::runtime {
namespace {

using nlohmann::json;

Status readField(const json& j, const char* key, json::value_t type, const json** out) {
  auto it = j.find(key);
  if (it == j.end()) return invalidArgument(std::string("worker record: missing field '") + key + "'");
  bool ok = type == json::value_t::number_integer ? it->is_number_integer() : it->type() == type;
  if (!ok) return invalidArgument(std::string("worker record: field '") + key + "' has the wrong type");
  *out = &*it;
  return Status::ok();
}

Status readString(const json& j, const char* key, std::string* out) {
  const json* v = nullptr;
  TURBINE_RETURN_IF_ERROR(readField(j, key, json::value_t::string, &v));
  *out = v->get<std::string>();
  return Status::ok();
}

template <typename Int>
Status readInt(const json& j, const char* key, Int* out) {
  const json* v = nullptr;
  TURBINE_RETURN_IF_ERROR(readField(j, key, json::value_t::number_integer, &v));
  *out = v->get<Int>();
  return Status::ok();
}

}  // namespace

std::string workerRecordToJson(const WorkerRecord& r) {
  nlohmann::ordered_json j;
  j["worker_id"] = r.worker_id;
  j["endpoint"] = r.endpoint;
  j["event_endpoint"] = r.event_endpoint;
  j["model_id"] = r.model_id;
  j["role"] = r.role;
  j["block_size"] = r.block_size;
  j["kv_blocks_total"] = r.kv_blocks_total;
  j["max_model_len"] = r.max_model_len;
  j["transfer"] = {{"backend", r.transfer.backend}, {"address", r.transfer.address}};
  j["served_model_name"] = r.served_model_name;
  j["model_path"] = r.model_path;
  return j.dump();
}

Result<WorkerRecord> workerRecordFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("worker record: not a JSON object");
  WorkerRecord r;
  TURBINE_RETURN_IF_ERROR(readInt(j, "worker_id", &r.worker_id));
  TURBINE_RETURN_IF_ERROR(readString(j, "endpoint", &r.endpoint));
  TURBINE_RETURN_IF_ERROR(readString(j, "event_endpoint", &r.event_endpoint));
  TURBINE_RETURN_IF_ERROR(readString(j, "model_id", &r.model_id));
  TURBINE_RETURN_IF_ERROR(readString(j, "role", &r.role));
  TURBINE_RETURN_IF_ERROR(readInt(j, "block_size", &r.block_size));
  TURBINE_RETURN_IF_ERROR(readInt(j, "kv_blocks_total", &r.kv_blocks_total));
  if (j.contains("max_model_len")) TURBINE_RETURN_IF_ERROR(readInt(j, "max_model_len", &r.max_model_len));
  if (j.contains("transfer")) {
    const json* t = nullptr;
    TURBINE_RETURN_IF_ERROR(readField(j, "transfer", json::value_t::object, &t));
    TURBINE_RETURN_IF_ERROR(readString(*t, "backend", &r.transfer.backend));
    TURBINE_RETURN_IF_ERROR(readString(*t, "address", &r.transfer.address));
  }
  if (j.contains("served_model_name")) TURBINE_RETURN_IF_ERROR(readString(j, "served_model_name", &r.served_model_name));
  if (j.contains("model_path")) TURBINE_RETURN_IF_ERROR(readString(j, "model_path", &r.model_path));
  return r;
}

}  // namespace turbine::runtime
