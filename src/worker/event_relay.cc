#include "worker/event_relay.h"

#include <utility>
#include <variant>

namespace turbine::worker {

Result<std::unique_ptr<EventRelay>> EventRelay::start(runtime::ZmqEventPlane* plane, const std::string& source,
                                                      const runtime::PublisherInfo& info) {
  if (plane == nullptr || plane->endpoint().empty()) {
    return invalidArgument("event relay: needs an event plane that publishes");
  }
  TURBINE_RETURN_IF_ERROR(runtime::parseEventEndpoint(source).status());
  std::unique_ptr<EventRelay> r(new EventRelay(plane, source, info.worker));
  r->subscription_ = plane->subscribe(runtime::Topic::kKv, [raw = r.get()](const runtime::EventPayload& p) {
    raw->relay(p);
  });
  if (Status st = plane->addPublisher(source, info); !st.isOk()) {
    plane->unsubscribe(r->subscription_);
    r->subscription_ = 0;
    return st;
  }
  return r;
}

EventRelay::~EventRelay() {
  if (subscription_ == 0) return;
  plane_->removePublisher(source_);
  plane_->unsubscribe(subscription_);
}

void EventRelay::relay(const runtime::EventPayload& payload) {
  const auto* in = std::get_if<kv::KvEventMessage>(&payload);
  if (in == nullptr) return;
  kv::KvEventMessage out = *in;
  out.worker_id = worker_;
  out.seq = next_seq_++;
  relayed_.fetch_add(1);  // before: a subscriber may see it before publish() returns
  (void)plane_->publish(std::move(out));  // Unavailable only once the plane closed
}

}  // namespace turbine::worker
