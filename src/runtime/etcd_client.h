// EtcdClient: the few etcd v3 calls that discovery needs, over etcd's JSON gRPC gateway
// (HTTP/1.1 POST /v3/..., keys and values base64 in the JSON), with Boost.Beast. Each call
// opens its own connection and waits at most timeout_ms; EtcdWatchStream holds one long-lived
// streaming POST /v3/watch.
// Errors: Unavailable when etcd cannot be reached or answers garbage; etcd's own errors keep
// their gRPC meaning (e.g. NotFound for "requested lease not found"), message prefixed "etcd: ".
// Thread safety: EtcdClient is immutable, safe from any thread. An EtcdWatchStream is run by one
// thread; cancel() may be called from any other.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::runtime {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;
};

struct EtcdWatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  std::string key;
  std::string value;  // "" for kDelete
  int64_t mod_revision = 0;
};

struct EtcdRange {
  std::vector<EtcdKeyValue> kvs;
  int64_t revision = 0;  // the store's revision when read: watch from revision + 1
};

std::string base64Encode(const std::string& bytes);
// DataLoss on characters outside the alphabet.
Result<std::string> base64Decode(const std::string& text);
// The smallest key greater than every key starting with `prefix` (etcd's range_end).
std::string prefixRangeEnd(const std::string& prefix);

class EtcdClient {
 public:
  // `endpoint`: "http://host:port" or "host:port"; InvalidArgument naming it otherwise.
  static Result<EtcdClient> create(const std::string& endpoint, int timeout_ms = 2000);

  Status health() const;  // GET /health answered {"health":"true"}
  Result<int64_t> grantLease(int ttl_s) const;
  // The lease's remaining TTL in seconds; NotFound when the lease expired or was revoked.
  Result<int64_t> keepAlive(int64_t lease) const;
  Status revokeLease(int64_t lease) const;
  Status put(const std::string& key, const std::string& value, int64_t lease = 0) const;
  Result<EtcdRange> rangePrefix(const std::string& prefix) const;
  Status deleteKey(const std::string& key) const;

  const std::string& host() const { return host_; }
  const std::string& port() const { return port_; }
  int timeoutMs() const { return timeout_ms_; }

 private:
  EtcdClient(std::string host, std::string port, int timeout_ms)
      : host_(std::move(host)), port_(std::move(port)), timeout_ms_(timeout_ms) {}
  // POST `target` with a JSON body; the parsed JSON answer as text, or the mapped error.
  Result<std::string> post(const std::string& target, const std::string& body) const;

  std::string host_;
  std::string port_;
  int timeout_ms_;
};

// One streaming watch of a key prefix from a revision. run() blocks: it calls on_events for
// every batch of events in order, and returns when cancel() is called (OK), or when the stream
// breaks or etcd cancels the watch (Unavailable / FailedPrecondition for a compacted revision).
class EtcdWatchStream {
 public:
  using OnEvents = std::function<void(const std::vector<EtcdWatchEvent>&)>;
  explicit EtcdWatchStream(const EtcdClient& client) : client_(client) {}
  Status run(const std::string& prefix, int64_t start_revision, const OnEvents& on_events);
  void cancel();

 private:
  Status consume(const std::string& json, const OnEvents& on_events);

  EtcdClient client_;
  std::mutex mu_;
  int fd_ = -1;  // the stream's socket while run() reads
  std::atomic<bool> cancelled_{false};
};

}  // namespace turbine::runtime
