// ZmqEventPlane: the fleet's event plane behind the EventPlane interface (event_plane.h).
// A worker's plane publishes (ZmqPublisher: PUB + replay sockets, its endpoint() goes into the
// discovery record's event_endpoint); a frontend's plane subscribes to the workers it discovers
// (addPublisher / removePublisher, ZmqSubscriber: gap repair by replay or snapshot). One plane
// may do both. Local subscribers get payloads from the connected publishers only (a plane that
// should also see its own payloads adds its own endpoint).
// Thread safety: all methods are thread-safe. Callbacks run on the subscriber's thread, one at a
// time.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/event_plane.h"
#include "runtime/zmq_publisher.h"
#include "runtime/zmq_subscriber.h"

namespace turbine::runtime {

struct ZmqEventPlaneOptions {
  bool publish = true;  // false: a subscribe-only plane (publish() is FailedPrecondition)
  ZmqPublisherOptions publisher;
  ZmqSubscriberOptions subscriber;
};

class ZmqEventPlane : public EventPlane {
 public:
  // Unavailable when the publisher's sockets cannot be bound.
  static Result<std::unique_ptr<ZmqEventPlane>> create(ZmqEventPlaneOptions options);
  ~ZmqEventPlane() override;

  Status publish(EventPayload payload) override;
  SubscriptionId subscribe(Topic topic, EventCallback callback) override;
  void unsubscribe(SubscriptionId id) override;

  // The publisher's event endpoint ("" for a subscribe-only plane).
  std::string endpoint() const;
  Status addPublisher(const std::string& event_endpoint, kv::WorkerId worker = 0);
  Status addPublisher(const std::string& event_endpoint, const PublisherInfo& info);
  void removePublisher(const std::string& event_endpoint);
  ZmqSubscriberStats subscriberStats() const;
  ZmqPublisher* publisher() { return publisher_.get(); }
  // Stops both sides; publish() is Unavailable after.
  void close();

 private:
  explicit ZmqEventPlane(ZmqEventPlaneOptions options);
  void deliver(const EventPayload& payload);

  ZmqEventPlaneOptions options_;
  std::unique_ptr<ZmqPublisher> publisher_;
  std::unique_ptr<ZmqSubscriber> subscriber_;
  std::mutex mu_;
  std::map<SubscriptionId, std::pair<Topic, EventCallback>> subscribers_;
  SubscriptionId next_id_ = 1;
  std::mutex deliver_mu_;  // held while callbacks run (unsubscribe waits on it)
  std::atomic<std::thread::id> delivery_thread_{};
};

}  // namespace turbine::runtime
