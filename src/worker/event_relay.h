// EventRelay: an engine's KV events, published again as a worker's own. `turbine worker --engine
// upstream` puts it between a vLLM engine's publisher and the frontends: the worker's event
// plane subscribes to the engine's endpoint (runtime::ZmqSubscriber reads vLLM's format and
// replay protocol and re-hashes the blocks by DESIGN.md §3.1) and publishes each message, under
// the worker's id and with consecutive seqs, on its own publisher, next to the worker's load
// reports. So frontends see a Turbine worker: one endpoint with both topics, a replay buffer, and
// a snapshot of the engine's cache for a frontend that joins late (vLLM keeps none: without the
// relay such a frontend would know only what the engine's replay buffer still held). A gap that
// the engine's buffer cannot repair reaches the frontends as the worker's cache cleared.
// Threads: the plane's delivery thread runs the relay. Thread safety: every method is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "runtime/zmq_event_plane.h"

namespace turbine::worker {

class EventRelay {
 public:
  // Subscribes `plane` (which must publish, and outlive the relay) to the engine's endpoint
  // (runtime::parseEventEndpoint's syntax: "tcp://H:P;replay=tcp://H:P;format=vllm").
  // InvalidArgument on a malformed endpoint or one that `plane` already reads.
  static Result<std::unique_ptr<EventRelay>> start(runtime::ZmqEventPlane* plane, const std::string& source,
                                                   const runtime::PublisherInfo& info);
  ~EventRelay();  // stops relaying

  uint64_t relayed() const { return relayed_.load(); }

 private:
  EventRelay(runtime::ZmqEventPlane* plane, std::string source, kv::WorkerId worker)
      : plane_(plane), source_(std::move(source)), worker_(worker) {}
  void relay(const runtime::EventPayload& payload);

  runtime::ZmqEventPlane* plane_;
  std::string source_;
  kv::WorkerId worker_;
  runtime::SubscriptionId subscription_ = 0;
  uint64_t next_seq_ = 0;  // the delivery thread's only
  std::atomic<uint64_t> relayed_{0};
};

}  // namespace turbine::worker
