// LoadPublisher: a worker's load reports (DESIGN.md §3.3) on the event plane's "load" topic,
// every `interval`, and `min_interval` after a change is signalled (markChanged: a request
// admitted or finished). The pause lets the step that made the change refresh the stats the
// report reads, and caps the rate: changes during it are reported together.
// Threads: one, from start() to stop(). Thread safety: every method is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "kv/load_metrics.h"
#include "runtime/event_plane.h"

namespace turbine::worker {

struct LoadPublisherOptions {
  std::chrono::milliseconds interval{100};
  std::chrono::milliseconds min_interval{2};
};

class LoadPublisher {
 public:
  // `metrics` is called on the publisher's thread (and by stop()); `events` must outlive this.
  LoadPublisher(runtime::EventPlane* events, std::function<kv::LoadMetrics()> metrics,
                LoadPublisherOptions options = {});
  ~LoadPublisher();  // stop(false)

  void start();
  void markChanged();
  // Joins the thread; then, when `last_report`, publishes one report more (routers see the
  // final state, e.g. a drained worker empty). Idempotent.
  void stop(bool last_report = true);

  // Milliseconds since the Unix epoch, the clock of LoadMetrics::ts_ms.
  static int64_t nowUnixMs();

 private:
  void loop();

  runtime::EventPlane* events_;
  std::function<kv::LoadMetrics()> metrics_;
  LoadPublisherOptions options_;
  std::mutex mu_;  // guards stop_, changed_, started_
  std::condition_variable cv_;
  bool stop_ = false;
  bool changed_ = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace turbine::worker
