// ZmqPublisher: the worker side of the ZeroMQ event plane (DESIGN.md §3.2, §3.3).
//
// A PUB socket sends every payload as frames [topic, seq (8-byte big-endian), MessagePack]
// (zmq_codec.h), seq counted per topic from 0. KV messages also go into a bounded replay buffer
// and into a mirror of the blocks the worker announced, so that a ROUTER side socket can answer
//   ["replay", topic, from_seq]  -> ["replay", topic, (seq, payload)...]   every buffered message
//                                   with seq >= from_seq, when the buffer still holds from_seq;
//                                -> ["snapshot", topic, next_seq, payload] otherwise, payload one
//                                   KV message [cleared, stored...] rebuilding the mirror (empty
//                                   when nothing was published yet);
//   ["snapshot", topic, 0]       -> ["snapshot", ...] as above (a subscriber joining late).
// For the load topic (nothing to replay) both answer ["gone", topic, next_seq].
// A snapshot KV message carries the worker id and the seq of the last KV message published, so
// the next published message follows it without a gap.
//
// The worker's event endpoint (its discovery record's event_endpoint) names both sockets:
//   "tcp://127.0.0.1:5557;replay=tcp://127.0.0.1:5558"  (the ";replay=" part is optional;
//   parseEventEndpoint below also names vLLM publishers).
// Thread safety: publish() is safe from any thread; one internal thread serves replays.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/status.h"
#include "runtime/event_plane.h"

namespace turbine::runtime {

struct ZmqPublisherOptions {
  std::string bind = "tcp://127.0.0.1:*";         // PUB socket; "*" port: any free port
  std::string replay_bind = "tcp://127.0.0.1:*";  // ROUTER for replay/snapshot; "" = none
  size_t replay_buffer = 4096;                    // KV messages kept for replay
  int send_hwm = 100000;                          // ZeroMQ send high-water mark (messages)
};

// What a publisher sends: Turbine's payloads (this file), or vLLM's KVEventBatch with vLLM's
// replay protocol (kv/vllm_events.h, zmq_subscriber.h).
enum class EventFormat { kTurbine, kVllm };

struct EventEndpoints {
  std::string pub;
  std::string replay;  // "" when the publisher serves no replays
  EventFormat format = EventFormat::kTurbine;
  std::string topic;   // vLLM's topic (its KVEventsConfig.topic, "" by default); Turbine: unused
};
// "PUB[;replay=REPLAY][;format=vllm][;topic=NAME]"; the optional parts in any order, format and
// topic only for vLLM publishers (a vLLM worker: "tcp://10.0.0.5:5557;replay=tcp://10.0.0.5:5558;
// format=vllm;topic=kv-events").
std::string formatEventEndpoint(const EventEndpoints& endpoints);
// InvalidArgument naming the text when it is empty or a part is malformed or unknown.
Result<EventEndpoints> parseEventEndpoint(const std::string& text);

class ZmqPublisher {
 public:
  // Binds both sockets; Unavailable naming the address when one cannot be bound.
  static Result<std::unique_ptr<ZmqPublisher>> start(const ZmqPublisherOptions& options);
  ~ZmqPublisher();  // close()

  // Unavailable once closed.
  Status publish(const EventPayload& payload);
  // The bound addresses in the format of formatEventEndpoint (real ports).
  std::string endpoint() const;
  void close();

  uint64_t replaysServed() const { return replays_served_.load(); }
  uint64_t snapshotsServed() const { return snapshots_served_.load(); }

  // What the mirror holds (tests): block hash -> parent, per tier.
  size_t mirroredBlocks() const;

 private:
  using ParentMap = std::unordered_map<uint64_t, std::optional<uint64_t>>;
  explicit ZmqPublisher(const ZmqPublisherOptions& options);
  Status bind();
  void serveReplays();
  void answer(zmq::multipart_t& request);
  void mirror(const kv::KvEventMessage& msg);
  std::string snapshotLocked() const;

  ZmqPublisherOptions options_;
  zmq::context_t ctx_;
  mutable std::mutex mu_;  // guards everything below except replay_ (owned by the thread)
  zmq::socket_t pub_;
  zmq::socket_t replay_;
  EventEndpoints endpoints_;
  bool closed_ = false;
  std::array<uint64_t, kNumTopics> next_seq_{};
  std::deque<std::pair<uint64_t, std::string>> buffer_;  // KV (seq, payload), oldest first
  std::array<ParentMap, kv::kNumTiers> blocks_;
  std::optional<kv::WorkerId> worker_id_;
  std::optional<uint64_t> last_kv_seq_;  // KvEventMessage::seq of the last KV message
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> replays_served_{0};
  std::atomic<uint64_t> snapshots_served_{0};
  std::thread thread_;
};

}  // namespace turbine::runtime
