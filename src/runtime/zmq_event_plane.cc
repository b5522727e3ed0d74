#include "runtime/zmq_event_plane.h"

#include <utility>
#include <vector>

namespace turbine::runtime {

ZmqEventPlane::ZmqEventPlane(ZmqEventPlaneOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<ZmqEventPlane>> ZmqEventPlane::create(ZmqEventPlaneOptions options) {
  std::unique_ptr<ZmqEventPlane> plane(new ZmqEventPlane(std::move(options)));
  if (plane->options_.publish) {
    Result<std::unique_ptr<ZmqPublisher>> pub = ZmqPublisher::start(plane->options_.publisher);
    if (!pub) return pub.status();
    plane->publisher_ = std::move(pub).value();
  }
  ZmqEventPlane* raw = plane.get();
  plane->subscriber_ = std::make_unique<ZmqSubscriber>(
      plane->options_.subscriber, [raw](const EventPayload& p) { raw->deliver(p); });
  return plane;
}

ZmqEventPlane::~ZmqEventPlane() { close(); }

void ZmqEventPlane::close() {
  if (subscriber_) subscriber_->close();
  if (publisher_) publisher_->close();
}

Status ZmqEventPlane::publish(EventPayload payload) {
  if (!publisher_) return failedPrecondition("event plane: this plane does not publish");
  return publisher_->publish(payload);
}

SubscriptionId ZmqEventPlane::subscribe(Topic topic, EventCallback callback) {
  std::lock_guard<std::mutex> lock(mu_);
  const SubscriptionId id = next_id_++;
  subscribers_.emplace(id, std::make_pair(topic, std::move(callback)));
  return id;
}

void ZmqEventPlane::unsubscribe(SubscriptionId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.erase(id);
  }
  if (std::this_thread::get_id() != delivery_thread_.load()) {
    std::lock_guard<std::mutex> wait(deliver_mu_);
  }
}

void ZmqEventPlane::deliver(const EventPayload& payload) {
  delivery_thread_ = std::this_thread::get_id();
  const Topic topic = topicOf(payload);
  std::lock_guard<std::mutex> delivering(deliver_mu_);
  std::vector<std::pair<SubscriptionId, EventCallback>> subs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, s] : subscribers_) {
      if (s.first == topic) subs.emplace_back(id, s.second);
    }
  }
  for (auto& [id, cb] : subs) {
    bool live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      live = subscribers_.count(id) > 0;
    }
    if (live) cb(payload);
  }
}

std::string ZmqEventPlane::endpoint() const { return publisher_ ? publisher_->endpoint() : std::string(); }

Status ZmqEventPlane::addPublisher(const std::string& event_endpoint, kv::WorkerId worker) {
  return subscriber_->addPublisher(event_endpoint, worker);
}

Status ZmqEventPlane::addPublisher(const std::string& event_endpoint, const PublisherInfo& info) {
  return subscriber_->addPublisher(event_endpoint, info);
}

void ZmqEventPlane::removePublisher(const std::string& event_endpoint) {
  subscriber_->removePublisher(event_endpoint);
}

ZmqSubscriberStats ZmqEventPlane::subscriberStats() const { return subscriber_->stats(); }

}  // namespace turbine::runtime
