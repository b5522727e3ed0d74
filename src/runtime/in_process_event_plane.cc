#include "runtime/in_process_event_plane.h"

#include <utility>
#include <vector>

namespace turbine::runtime {

std::string_view topicName(Topic topic) {
  return topic == Topic::kKv ? "kv" : "load";
}

Topic topicOf(const EventPayload& payload) {
  return std::holds_alternative<kv::KvEventMessage>(payload) ? Topic::kKv : Topic::kLoad;
}

InProcessEventPlane::InProcessEventPlane(InProcessEventPlaneOptions options) : options_(options) {
  if (options_.max_queued == 0) options_.max_queued = 1;
  thread_ = std::thread([this] { run(); });
  delivery_thread_id_ = thread_.get_id();
}

InProcessEventPlane::~InProcessEventPlane() { close(); }

Status InProcessEventPlane::publish(EventPayload payload) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return unavailable("event plane: closed");
    if (queue_.size() >= options_.max_queued) {
      queue_.pop_front();
      ++dropped_;
      ++done_;
    }
    queue_.push_back(std::move(payload));
    ++published_;
  }
  cv_.notify_one();
  return Status::ok();
}

SubscriptionId InProcessEventPlane::subscribe(Topic topic, EventCallback callback) {
  std::lock_guard<std::mutex> lock(mu_);
  SubscriptionId id = next_id_++;
  subscribers_.emplace(id, Subscriber{topic, std::move(callback)});
  return id;
}

void InProcessEventPlane::unsubscribe(SubscriptionId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.erase(id);
  }
  // Wait out a delivery in progress, unless we are that delivery.
  if (std::this_thread::get_id() != delivery_thread_id_) {
    std::lock_guard<std::mutex> wait(deliver_mu_);
  }
}

void InProcessEventPlane::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = published_;
  idle_cv_.wait(lock, [&] { return done_ >= target || (closed_ && !thread_.joinable()); });
}

void InProcessEventPlane::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  idle_cv_.notify_all();
}

uint64_t InProcessEventPlane::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void InProcessEventPlane::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closed and drained
    std::deque<EventPayload> batch;
    batch.swap(queue_);
    std::lock_guard<std::mutex> delivering(deliver_mu_);
    for (auto& payload : batch) {
      // Snapshot the subscribers of this topic, then call them without mu_ held, so they may
      // publish or (un)subscribe.
      const Topic topic = topicOf(payload);
      std::vector<std::pair<SubscriptionId, EventCallback>> subs;
      for (const auto& [id, s] : subscribers_) {
        if (s.topic == topic) subs.emplace_back(id, s.callback);
      }
      lock.unlock();
      for (auto& [id, cb] : subs) {
        bool live;
        {
          std::lock_guard<std::mutex> check(mu_);
          live = subscribers_.count(id) > 0;
        }
        if (live) cb(payload);
      }
      lock.lock();
      ++done_;
    }
    idle_cv_.notify_all();
  }
}

}  // namespace turbine::runtime
