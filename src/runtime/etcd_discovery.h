// EtcdDiscovery: the fleet's Discovery (discovery.h, DESIGN.md §3.5) over etcd v3.
//
// Keys: `turbine/<namespace>/workers/<worker_id>` (worker id in decimal) -> workerRecordToJson.
// registerWorker() attaches the key to this process's lease (granted on first use, TTL
// lease_ttl_s), which a thread keeps alive every TTL/3; if the lease is lost (etcd restarted,
// the process stalled past the TTL) a new one is granted and every record put again. A process
// that dies stops the keepalives, and etcd removes its records within the TTL. The destructor
// revokes the lease, so a clean exit removes them at once.
// list() reads the prefix from etcd. watch() starts (once) a thread that lists the prefix, then
// follows a streaming watch from the listed revision; when the stream breaks it lists again and
// reports the difference, so watchers converge on etcd's state after any outage.
// A record whose JSON does not parse is skipped (counted in malformedRecords()).
// Thread safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/discovery.h"
#include "runtime/etcd_client.h"

namespace turbine::runtime {

struct EtcdDiscoveryOptions {
  std::string endpoint = "http://127.0.0.1:2379";
  std::string namespace_name = "default";
  int lease_ttl_s = 10;
  int request_timeout_ms = 2000;
  int retry_interval_ms = 500;  // after a failed watch stream or keepalive
};

class EtcdDiscovery : public Discovery {
 public:
  // InvalidArgument on a malformed endpoint, namespace or TTL; Unavailable naming the endpoint
  // when etcd does not answer its health check.
  static Result<std::unique_ptr<EtcdDiscovery>> create(const EtcdDiscoveryOptions& options);
  ~EtcdDiscovery() override;

  Status registerWorker(const WorkerRecord& record) override;
  void deregisterWorker(WorkerId worker_id) override;
  std::vector<WorkerRecord> list() override;
  WatchId watch(DiscoveryCallback callback) override;
  void unwatch(WatchId id) override;

  // `turbine/<namespace>/workers/`.
  const std::string& prefix() const { return prefix_; }
  uint64_t malformedRecords() const { return malformed_.load(); }
  uint64_t leasesGranted() const { return leases_granted_.load(); }
  // Tests: stop the keepalives without revoking, as if the process had died.
  void stopKeepAliveForTesting();

  struct Watcher;  // implementation detail: one watch() callback

 private:
  EtcdDiscovery(const EtcdDiscoveryOptions& options, EtcdClient client);
  Status ensureLeaseLocked();
  void keepAliveLoop();
  void watchLoop();
  // Replaces the cache by `records`, dispatching the difference.
  void resync(const std::map<WorkerId, WorkerRecord>& records);
  void applyPut(const std::string& value);
  void applyDelete(const std::string& key);
  std::string keyOf(WorkerId id) const { return prefix_ + std::to_string(id); }

  EtcdDiscoveryOptions options_;
  EtcdClient client_;
  std::string prefix_;

  // Registration side.
  std::mutex reg_mu_;
  std::condition_variable reg_cv_;
  int64_t lease_ = 0;
  std::map<WorkerId, WorkerRecord> registered_;
  bool keepalive_stop_ = false;
  std::thread keepalive_;

  // Watch side.
  std::mutex watch_mu_;
  std::map<WorkerId, WorkerRecord> cache_;  // what watchers have been told
  std::map<WatchId, std::shared_ptr<Watcher>> watchers_;
  WatchId next_watch_ = 1;
  std::atomic<bool> watch_stop_{false};
  std::shared_ptr<EtcdWatchStream> stream_;  // guarded by watch_mu_
  std::thread watcher_;

  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> leases_granted_{0};
};

}  // namespace turbine::runtime
