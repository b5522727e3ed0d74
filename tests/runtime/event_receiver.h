// The test side of an event plane: what a router would rebuild from delivered payloads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "kv/kv_events.h"
#include "runtime/event_plane.h"

namespace turbine::runtime {

using namespace std::chrono_literals;

// What a router would rebuild: the blocks per tier, from every delivered KV message.
struct Receiver {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<kv::KvEventMessage> kv_messages;
  std::vector<kv::LoadMetrics> loads;
  kv::KvBlockSet blocks;

  void onPayload(const EventPayload& p) {
    std::lock_guard<std::mutex> lock(mu);
    if (const auto* m = std::get_if<kv::KvEventMessage>(&p)) {
      kv_messages.push_back(*m);
      for (const kv::KvEvent& e : m->events) blocks.apply(e);
    } else {
      loads.push_back(std::get<kv::LoadMetrics>(p));
    }
    cv.notify_all();
  }
  bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, done);
  }
};

}  // namespace turbine::runtime
