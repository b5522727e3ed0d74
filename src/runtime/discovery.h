// Discovery (DESIGN.md §3.5): which workers exist, where to reach them and what they serve.
// A worker registers its record while it lives and deregisters when it stops; the frontend and
// routers list the records and watch for changes. The embedded default keeps the records in
// memory (in_process_discovery.h); the fleet keeps them in etcd under
// `turbine/<namespace>/workers/<worker_id>`, attached to a lease, as the JSON of workerRecordToJson.
// Thread safety: implementations are safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "kv/kv_events.h"

namespace turbine::runtime {

using kv::WorkerId;

struct TransferInfo {
  std::string backend;  // "" (none), "shm", "tcp", "ucx"
  std::string address;
  bool operator==(const TransferInfo&) const = default;
};

struct WorkerRecord {
  WorkerId worker_id = 0;
  std::string endpoint;        // request plane address (gRPC in a fleet, a name in-process)
  std::string event_endpoint;  // event plane address (topics "kv" and "load"); "" in-process
  std::string model_id;        // block-hash root (DESIGN.md §3.1)
  std::string role = "agg";    // "agg" | "prefill" | "decode"
  int32_t block_size = 16;
  int32_t kv_blocks_total = 0;
  int32_t max_model_len = 0;   // the longest sequence the worker accepts; 0 = unknown
  TransferInfo transfer;
  // Beyond DESIGN.md §3.5 (optional in the JSON): how a frontend that discovers the worker
  // serves its model — the name clients use ("" = model_id) and the model's path on a shared
  // filesystem, where the frontend reads its tokenizer and chat template ("" = unknown).
  std::string served_model_name;
  std::string model_path;
  bool operator==(const WorkerRecord&) const = default;
};

// {"worker_id", "endpoint", "event_endpoint", "model_id", "role", "block_size",
//  "kv_blocks_total", "max_model_len", "transfer": {"backend", "address"}, "served_model_name",
//  "model_path"} without whitespace.
std::string workerRecordToJson(const WorkerRecord& record);
// Inverse; InvalidArgument naming the field on a missing or mistyped one.
Result<WorkerRecord> workerRecordFromJson(const std::string& text);

struct DiscoveryEvent {
  enum class Kind { kAdded, kRemoved };
  Kind kind = Kind::kAdded;
  WorkerRecord record;  // for kRemoved, the record as it was
};

using DiscoveryCallback = std::function<void(const DiscoveryEvent&)>;
using WatchId = uint64_t;

class Discovery {
 public:
  virtual ~Discovery() = default;
  // Adds or replaces the record of record.worker_id (a replacement is seen as removed + added).
  virtual Status registerWorker(const WorkerRecord& record) = 0;
  // Removes the record; unknown ids are ignored.
  virtual void deregisterWorker(WorkerId worker_id) = 0;
  virtual std::vector<WorkerRecord> list() = 0;
  // Calls `callback` with kAdded for every current record, then for every change, in order,
  // until unwatch(). Callbacks of one watch never overlap.
  virtual WatchId watch(DiscoveryCallback callback) = 0;
  // After unwatch() returns, the watch's callback is not running and will not be called again.
  // Must not be called from inside that callback.
  virtual void unwatch(WatchId id) = 0;
};

}  // namespace turbine::runtime
