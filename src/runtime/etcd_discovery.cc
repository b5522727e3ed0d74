#include "runtime/etcd_discovery.h"

#include <chrono>
#include <utility>
#include <vector>

namespace turbine::runtime {

struct EtcdDiscovery::Watcher {
  std::mutex mu;  // held while the callback runs
  DiscoveryCallback callback;
  bool alive = true;
};

namespace {

std::vector<DiscoveryEvent> replaceEvents(const WorkerRecord* old, const WorkerRecord& now) {
  std::vector<DiscoveryEvent> events;
  if (old && *old == now) return events;
  if (old) events.push_back({DiscoveryEvent::Kind::kRemoved, *old});
  events.push_back({DiscoveryEvent::Kind::kAdded, now});
  return events;
}

}  // namespace

EtcdDiscovery::EtcdDiscovery(const EtcdDiscoveryOptions& options, EtcdClient client)
    : options_(options), client_(std::move(client)),
      prefix_("turbine/" + options.namespace_name + "/workers/") {}

Result<std::unique_ptr<EtcdDiscovery>> EtcdDiscovery::create(const EtcdDiscoveryOptions& options) {
  if (options.namespace_name.empty() || options.namespace_name.find('/') != std::string::npos) {
    return invalidArgument("etcd discovery: namespace '" + options.namespace_name + "' must be non-empty without '/'");
  }
  if (options.lease_ttl_s < 1) return invalidArgument("etcd discovery: lease TTL must be >= 1 s");
  TURBINE_ASSIGN_OR_RETURN(EtcdClient client, EtcdClient::create(options.endpoint, options.request_timeout_ms));
  Status healthy = client.health();
  if (!healthy.isOk()) return unavailable("etcd discovery: " + options.endpoint + " is not reachable: " + healthy.message());
  return std::unique_ptr<EtcdDiscovery>(new EtcdDiscovery(options, std::move(client)));
}

EtcdDiscovery::~EtcdDiscovery() {
  bool revoke = false;
  {
    std::lock_guard<std::mutex> lock(reg_mu_);
    revoke = !keepalive_stop_ && lease_ != 0;
    keepalive_stop_ = true;
  }
  reg_cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
  if (revoke) (void)client_.revokeLease(lease_);  // records vanish now, not after the TTL
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watch_stop_ = true;
    if (stream_) stream_->cancel();
  }
  if (watcher_.joinable()) watcher_.join();
}

// --- registration ---

Status EtcdDiscovery::ensureLeaseLocked() {
  if (lease_ != 0) return Status::ok();
  Result<int64_t> lease = client_.grantLease(options_.lease_ttl_s);
  if (!lease) return lease.status().withPrefix("etcd discovery: lease");
  lease_ = *lease;
  ++leases_granted_;
  if (!keepalive_.joinable() && !keepalive_stop_) keepalive_ = std::thread([this] { keepAliveLoop(); });
  return Status::ok();
}

Status EtcdDiscovery::registerWorker(const WorkerRecord& record) {
  std::lock_guard<std::mutex> lock(reg_mu_);
  const std::string json = workerRecordToJson(record);
  for (int attempt = 0; attempt < 2; ++attempt) {
    TURBINE_RETURN_IF_ERROR(ensureLeaseLocked());
    Status put = client_.put(keyOf(record.worker_id), json, lease_);
    if (put.isOk()) {
      registered_[record.worker_id] = record;
      return Status::ok();
    }
    if (put.code() != StatusCode::kNotFound) return put.withPrefix("etcd discovery: register worker " + std::to_string(record.worker_id));
    lease_ = 0;  // the lease is gone: take a new one and try once more
  }
  return unavailable("etcd discovery: register worker " + std::to_string(record.worker_id) + ": lease keeps vanishing");
}

void EtcdDiscovery::deregisterWorker(WorkerId worker_id) {
  std::lock_guard<std::mutex> lock(reg_mu_);
  if (registered_.erase(worker_id) == 0) return;
  (void)client_.deleteKey(keyOf(worker_id));  // if etcd is away, the lease TTL removes it
}

void EtcdDiscovery::keepAliveLoop() {
  const auto interval = std::chrono::milliseconds(std::max(200, options_.lease_ttl_s * 1000 / 3));
  std::unique_lock<std::mutex> lock(reg_mu_);
  while (!keepalive_stop_) {
    reg_cv_.wait_for(lock, interval, [&] { return keepalive_stop_; });
    if (keepalive_stop_ || lease_ == 0) continue;
    const int64_t lease = lease_;
    lock.unlock();
    Result<int64_t> ttl = client_.keepAlive(lease);
    lock.lock();
    if (ttl.isOk() || ttl.status().code() != StatusCode::kNotFound || lease_ != lease) continue;
    // Lost the lease (etcd forgot it): a new one, and every record again.
    lease_ = 0;
    if (registered_.empty() || !ensureLeaseLocked().isOk()) continue;
    for (const auto& [id, record] : registered_) {
      (void)client_.put(keyOf(id), workerRecordToJson(record), lease_);
    }
  }
}

void EtcdDiscovery::stopKeepAliveForTesting() {
  {
    std::lock_guard<std::mutex> lock(reg_mu_);
    keepalive_stop_ = true;
  }
  reg_cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
}

// --- listing and watching ---

std::vector<WorkerRecord> EtcdDiscovery::list() {
  Result<EtcdRange> range = client_.rangePrefix(prefix_);
  std::vector<WorkerRecord> out;
  if (!range) {  // etcd away: what the watch last saw
    std::lock_guard<std::mutex> lock(watch_mu_);
    for (const auto& [id, record] : cache_) out.push_back(record);
    return out;
  }
  for (const EtcdKeyValue& kv : range->kvs) {
    Result<WorkerRecord> record = workerRecordFromJson(kv.value);
    if (record) out.push_back(std::move(record).value());
    else ++malformed_;
  }
  return out;
}

WatchId EtcdDiscovery::watch(DiscoveryCallback callback) {
  auto w = std::make_shared<Watcher>();
  w->callback = std::move(callback);
  std::unique_lock<std::mutex> lock(watch_mu_);
  const WatchId id = next_watch_++;
  watchers_.emplace(id, w);
  if (!watcher_.joinable()) watcher_ = std::thread([this] { watchLoop(); });
  std::vector<WorkerRecord> current;
  for (const auto& [wid, record] : cache_) current.push_back(record);
  // Take the watcher's lock before letting the dispatcher run, so the initial records go first.
  std::lock_guard<std::mutex> calling(w->mu);
  lock.unlock();
  for (const WorkerRecord& r : current) w->callback({DiscoveryEvent::Kind::kAdded, r});
  return id;
}

void EtcdDiscovery::unwatch(WatchId id) {
  std::shared_ptr<Watcher> w;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    auto it = watchers_.find(id);
    if (it == watchers_.end()) return;
    w = it->second;
    watchers_.erase(it);
  }
  std::lock_guard<std::mutex> calling(w->mu);
  w->alive = false;
}

// Replaces cache_ by `records` and tells every watcher the difference, in order.
void EtcdDiscovery::resync(const std::map<WorkerId, WorkerRecord>& records) {
  std::vector<DiscoveryEvent> events;
  std::vector<std::shared_ptr<Watcher>> targets;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    for (const auto& [id, old] : cache_) {
      if (!records.count(id)) events.push_back({DiscoveryEvent::Kind::kRemoved, old});
    }
    for (const auto& [id, record] : records) {
      auto it = cache_.find(id);
      auto more = replaceEvents(it == cache_.end() ? nullptr : &it->second, record);
      events.insert(events.end(), more.begin(), more.end());
    }
    cache_ = records;
    for (const auto& [wid, w] : watchers_) targets.push_back(w);
  }
  for (const auto& w : targets) {
    std::lock_guard<std::mutex> calling(w->mu);
    for (const DiscoveryEvent& e : events) {
      if (w->alive) w->callback(e);
    }
  }
}

void EtcdDiscovery::applyPut(const std::string& value) {
  Result<WorkerRecord> record = workerRecordFromJson(value);
  if (!record) {
    ++malformed_;
    return;
  }
  std::map<WorkerId, WorkerRecord> next;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    next = cache_;
  }
  next[record->worker_id] = *record;
  resync(next);
}

void EtcdDiscovery::applyDelete(const std::string& key) {
  if (key.rfind(prefix_, 0) != 0) return;
  WorkerId id = 0;
  try {
    id = std::stoull(key.substr(prefix_.size()));
  } catch (const std::exception&) {
    return;  // not one of ours
  }
  std::map<WorkerId, WorkerRecord> next;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    next = cache_;
  }
  next.erase(id);
  resync(next);
}

void EtcdDiscovery::watchLoop() {
  const auto retry = std::chrono::milliseconds(options_.retry_interval_ms);
  while (!watch_stop_) {
    Result<EtcdRange> range = client_.rangePrefix(prefix_);
    if (range) {
      std::map<WorkerId, WorkerRecord> records;
      for (const EtcdKeyValue& kv : range->kvs) {
        Result<WorkerRecord> record = workerRecordFromJson(kv.value);
        if (record) records[record->worker_id] = std::move(record).value();
        else ++malformed_;
      }
      resync(records);
      auto stream = std::make_shared<EtcdWatchStream>(client_);
      {
        std::lock_guard<std::mutex> lock(watch_mu_);
        if (watch_stop_) return;
        stream_ = stream;
      }
      (void)stream->run(prefix_, range->revision + 1, [this](const std::vector<EtcdWatchEvent>& events) {
        for (const EtcdWatchEvent& e : events) {
          if (e.type == EtcdWatchEvent::Type::kPut) applyPut(e.value);
          else applyDelete(e.key);
        }
      });
      std::lock_guard<std::mutex> lock(watch_mu_);
      stream_.reset();
    }
    for (auto waited = std::chrono::milliseconds(0); waited < retry && !watch_stop_; waited += std::chrono::milliseconds(20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace turbine::runtime
