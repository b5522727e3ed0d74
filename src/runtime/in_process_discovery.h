// InProcessDiscovery: the embedded default's discovery, a table in memory. Watch callbacks run
// synchronously on the thread that registers or deregisters (and on the watch()ing thread for
// the initial snapshot), one change at a time for the whole table, so every watcher sees the
// same order. A callback must not call back into this object.
// Thread safety: all methods are thread-safe.
#pragma once

#include <map>
#include <mutex>

#include "runtime/discovery.h"

namespace turbine::runtime {

class InProcessDiscovery : public Discovery {
 public:
  Status registerWorker(const WorkerRecord& record) override;
  void deregisterWorker(WorkerId worker_id) override;
  std::vector<WorkerRecord> list() override;
  WatchId watch(DiscoveryCallback callback) override;
  void unwatch(WatchId id) override;

 private:
  void notify(const DiscoveryEvent& event);  // caller holds mu_

  // One lock for records and watchers: changes and their notifications are serialized, so a
  // watcher can never see a removal before the matching addition.
  std::recursive_mutex mu_;
  std::map<WorkerId, WorkerRecord> records_;
  std::map<WatchId, DiscoveryCallback> watchers_;
  WatchId next_watch_ = 1;
};

}  // namespace turbine::runtime
