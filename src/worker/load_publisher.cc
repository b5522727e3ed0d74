#include "worker/load_publisher.h"

#include <utility>

namespace turbine::worker {

LoadPublisher::LoadPublisher(runtime::EventPlane* events, std::function<kv::LoadMetrics()> metrics,
                             LoadPublisherOptions options)
    : events_(events), metrics_(std::move(metrics)), options_(options) {}

LoadPublisher::~LoadPublisher() { stop(false); }

int64_t LoadPublisher::nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void LoadPublisher::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { loop(); });
}

void LoadPublisher::markChanged() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed_ = true;
  }
  cv_.notify_one();
}

void LoadPublisher::stop(bool last_report) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (last_report) (void)events_->publish(metrics_());
}

void LoadPublisher::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.interval, [&] { return stop_ || changed_; });
    if (stop_) break;
    if (changed_) {
      cv_.wait_for(lock, options_.min_interval, [&] { return stop_; });
      if (stop_) break;
    }
    changed_ = false;
    lock.unlock();
    (void)events_->publish(metrics_());  // Unavailable only once the plane closed
    lock.lock();
  }
}

}  // namespace turbine::worker
