// ZmqSubscriber: the router side of the ZeroMQ event plane. It connects one SUB socket (and one
// DEALER for replays, when the endpoint names one) per publisher, and hands every payload, in
// order per publisher and topic, to one delivery function on its own thread.
//
// Gap repair for the "kv" topic, by the frame seq (zmq_publisher.h):
//   - joining: asks the publisher for a snapshot first (when it serves replays), so the router
//     starts from the worker's whole cache, not from whatever it publishes next;
//   - a frame whose seq is past the next expected one: asks "replay from <expected>", holds what
//     arrives meanwhile, then delivers the replayed messages and the held ones in seq order;
//   - "snapshot" answer (the buffer no longer has it): delivers the snapshot message
//     [cleared, stored...] and goes on from its seq;
//   - no replay socket, "gone", or no answer within replay_timeout_ms: delivers a KV message
//     {worker_id, events: [cleared]} (drop that worker's entries) and goes on from what arrives.
// Duplicates (seq below the next expected) are dropped. Load metrics are delivered as they come.
//
// A vLLM publisher (endpoint with ";format=vllm", zmq_publisher.h) sends KVEventBatch payloads on
// its own topic and answers replays its way: the DEALER sends ["", from_seq] and gets one message
// ["", seq, payload] per buffered batch with seq >= from_seq, then ["", -1, ""]. It keeps no
// snapshot, so
//   - joining asks for a replay from 0 (all the publisher's buffer still holds) and goes on from
//     the first batch it has (from 0 when nothing was published);
//   - a gap that the replay does not fill (its first batch is past the expected one) drops the
//     worker's entries (a KV message {worker_id, [cleared]}) and goes on from what it has.
// Each batch is re-hashed by a kv::VllmBlockTranslator (the worker's model id and block size,
// given to addPublisher) and delivered as a KvEventMessage {worker, frame seq, events}; a batch
// that cannot be decoded is lost work, handled as a lost frame (the worker's entries dropped).
// vLLM publishes no load metrics: the router's counts for such a worker are its own.
// Thread safety: all methods are thread-safe; `deliver` runs on the subscriber's thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "runtime/event_plane.h"

namespace turbine::runtime {

struct ZmqSubscriberOptions {
  int replay_timeout_ms = 1000;   // a replay or snapshot request unanswered this long is "gone"
  bool snapshot_on_connect = true;
  int poll_interval_ms = 20;      // how often the thread looks at added/removed publishers
  // A lost *last* frame leaves no later frame to reveal the gap: this long after a publisher's
  // last kv frame, the subscriber asks it once for a replay from the next seq (an empty answer
  // when nothing was lost). 0 = never.
  int tail_probe_ms = 500;
  // Tests: return true to make the subscriber act as if this frame was lost on the wire.
  std::function<bool(Topic, uint64_t seq)> drop_for_test;
};

struct ZmqSubscriberStats {
  uint64_t delivered = 0;
  uint64_t gaps = 0;            // kv frames past the next expected seq
  uint64_t replays = 0;         // replay answers that filled a gap (non-empty)
  uint64_t tail_probes = 0;     // replay requests sent after a publisher went quiet
  uint64_t snapshots = 0;       // snapshot answers applied (joins included)
  uint64_t cleared = 0;         // synthesized "drop this worker's entries" messages
  uint64_t duplicates = 0;
  uint64_t decode_errors = 0;
  uint64_t joins = 0;            // publishers whose join request (snapshot / replay) has ended
  uint64_t vllm_blocks_dropped = 0;  // vLLM blocks that could not be re-hashed (translator stats)
};

// Who publishes on an endpoint. For a vLLM publisher, worker must be non-zero (its payloads name
// no worker) and model_id / block_size are the worker's (its discovery record's).
struct PublisherInfo {
  kv::WorkerId worker = 0;
  std::string model_id;
  int32_t block_size = 16;
};

class ZmqSubscriber {
 public:
  using Deliver = std::function<void(const EventPayload&)>;
  ZmqSubscriber(ZmqSubscriberOptions options, Deliver deliver);
  ~ZmqSubscriber();  // close()

  // Connects to a publisher (its event endpoint, zmq_publisher.h); `worker` names whose entries
  // a lost replay clears (0: the worker id of the last KV message seen from it).
  // InvalidArgument on a malformed endpoint (or a vLLM one without a worker id); AlreadyExists
  // when already connected.
  Status addPublisher(const std::string& event_endpoint, kv::WorkerId worker = 0);
  Status addPublisher(const std::string& event_endpoint, const PublisherInfo& info);
  void removePublisher(const std::string& event_endpoint);
  size_t publishers() const;
  ZmqSubscriberStats stats() const;
  void close();

  struct Remote;  // implementation detail: one connected publisher

 private:
  void run();
  void applyCommands();
  void onFrame(Remote& r, std::vector<std::string>& frames);
  void onReply(Remote& r, std::vector<std::string>& frames);
  void acceptKv(Remote& r, uint64_t seq, const std::string& bytes);
  void drainHeld(Remote& r);
  void requestReplay(Remote& r, const char* cmd, uint64_t from);
  void onVllmReply(Remote& r, std::vector<std::string>& frames);
  void endJoin(Remote& r);
  void deliverKv(Remote& r, uint64_t seq, const std::string& bytes);
  void deliverCleared(Remote& r);
  void checkTimeouts();
  void probeTails();  // see ZmqSubscriberOptions::tail_probe_ms

  ZmqSubscriberOptions options_;
  Deliver deliver_;
  std::unique_ptr<struct ZmqSubscriberContext> zmq_;
  mutable std::mutex mu_;  // guards commands_, names_ and stats_
  struct Command {
    bool add = true;
    std::string endpoint;
    PublisherInfo info;
  };
  std::deque<Command> commands_;
  std::vector<std::string> names_;
  ZmqSubscriberStats stats_;
  std::vector<std::unique_ptr<Remote>> remotes_;  // the thread's own
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace turbine::runtime
