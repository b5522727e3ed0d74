// InProcessEventPlane: the embedded default's event plane. publish() appends to a queue; one
// delivery thread hands each payload to the subscribers of its topic in publish order. The
// queue is bounded (options.max_queued): beyond it the oldest payloads are dropped and counted,
// so a stuck subscriber slows nobody else down (KV event gaps are then visible by seq).
// Thread safety: all methods are thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "runtime/event_plane.h"

namespace turbine::runtime {

struct InProcessEventPlaneOptions {
  size_t max_queued = 65536;  // payloads waiting for delivery, at most
};

class InProcessEventPlane : public EventPlane {
 public:
  explicit InProcessEventPlane(InProcessEventPlaneOptions options = {});
  ~InProcessEventPlane() override;  // close()

  Status publish(EventPayload payload) override;
  SubscriptionId subscribe(Topic topic, EventCallback callback) override;
  void unsubscribe(SubscriptionId id) override;

  // Blocks until every payload published before the call was delivered (or dropped).
  void flush();
  // Delivers what is queued, then stops the delivery thread; publish() is Unavailable after.
  void close();
  uint64_t dropped() const;

 private:
  struct Subscriber {
    Topic topic;
    EventCallback callback;
  };
  void run();

  InProcessEventPlaneOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // queue not empty, or closing
  std::condition_variable idle_cv_;  // a batch was delivered
  std::deque<EventPayload> queue_;
  uint64_t published_ = 0;           // payloads ever queued
  uint64_t done_ = 0;                // payloads delivered or dropped
  uint64_t dropped_ = 0;
  bool closed_ = false;
  std::map<SubscriptionId, Subscriber> subscribers_;
  SubscriptionId next_id_ = 1;
  std::mutex deliver_mu_;            // held while callbacks run (unsubscribe waits on it)
  std::thread::id delivery_thread_id_;
  std::thread thread_;
};

}  // namespace turbine::runtime
