#include "runtime/in_process_discovery.h"

#include <utility>

namespace turbine::runtime {

Status InProcessDiscovery::registerWorker(const WorkerRecord& record) {
  if (record.endpoint.empty()) {
    return invalidArgument("discovery: worker " + std::to_string(record.worker_id) + ": empty endpoint");
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = records_.find(record.worker_id);
  if (it != records_.end()) {
    if (it->second == record) return Status::ok();
    DiscoveryEvent removed{DiscoveryEvent::Kind::kRemoved, it->second};
    records_.erase(it);
    notify(removed);
  }
  records_.emplace(record.worker_id, record);
  notify(DiscoveryEvent{DiscoveryEvent::Kind::kAdded, record});
  return Status::ok();
}

void InProcessDiscovery::deregisterWorker(WorkerId worker_id) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = records_.find(worker_id);
  if (it == records_.end()) return;
  DiscoveryEvent removed{DiscoveryEvent::Kind::kRemoved, std::move(it->second)};
  records_.erase(it);
  notify(removed);
}

std::vector<WorkerRecord> InProcessDiscovery::list() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  std::vector<WorkerRecord> out;
  out.reserve(records_.size());
  for (const auto& [id, r] : records_) out.push_back(r);
  return out;
}

WatchId InProcessDiscovery::watch(DiscoveryCallback callback) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  for (const auto& [id, r] : records_) callback(DiscoveryEvent{DiscoveryEvent::Kind::kAdded, r});
  WatchId id = next_watch_++;
  watchers_.emplace(id, std::move(callback));
  return id;
}

void InProcessDiscovery::unwatch(WatchId id) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  watchers_.erase(id);
}

void InProcessDiscovery::notify(const DiscoveryEvent& event) {
  for (auto& [id, cb] : watchers_) cb(event);
}

}  // namespace turbine::runtime
