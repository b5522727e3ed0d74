// Event plane: workers publish, routers and planners subscribe. Two topics (DESIGN.md §3.2,
// §3.3): "kv" carries KV event messages, "load" carries load metrics. The embedded default
// delivers in-process (in_process_event_plane.h); the fleet uses ZeroMQ PUB/SUB with frames
// [topic, seq, MessagePack payload] behind the same interface.
//
// Delivery: asynchronous (publish() never waits for a subscriber), in publish order per
// publisher thread, at most once; a subscriber that joins late misses what was published before
// (KV events carry `seq`, so a gap is visible to the router).
// Thread safety: implementations are safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <variant>

#include "common/status.h"
#include "kv/kv_events.h"
#include "kv/load_metrics.h"

namespace turbine::runtime {

enum class Topic : uint8_t { kKv = 0, kLoad = 1 };
inline constexpr int kNumTopics = 2;

// "kv", "load".
std::string_view topicName(Topic topic);

using EventPayload = std::variant<kv::KvEventMessage, kv::LoadMetrics>;
// The topic a payload travels on (kv for KvEventMessage, load for LoadMetrics).
Topic topicOf(const EventPayload& payload);

using EventCallback = std::function<void(const EventPayload&)>;
using SubscriptionId = uint64_t;

class EventPlane {
 public:
  virtual ~EventPlane() = default;
  // Unavailable once the plane is closed.
  virtual Status publish(EventPayload payload) = 0;
  // `callback` gets every payload of `topic` published from now on. Callbacks run on the
  // plane's delivery thread, never two at once, and must not block for long.
  virtual SubscriptionId subscribe(Topic topic, EventCallback callback) = 0;
  // After it returns, the callback is not running and will not run again (unless called from
  // inside a callback, where it only stops future deliveries).
  virtual void unsubscribe(SubscriptionId id) = 0;
};

}  // namespace turbine::runtime
