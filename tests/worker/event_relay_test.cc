// EventRelay over real ZeroMQ on loopback: an engine's KV events (here a Turbine publisher; the
// vLLM format is tested end to end in tests/fleet/upstream_test.py) reach subscribers of the
// worker's own endpoint under the worker's id with consecutive seqs, and a subscriber that joins
// late gets the whole cache from the worker's snapshot.
#include "worker/event_relay.h"

#include <gtest/gtest.h>

#include <random>

#include "runtime/event_receiver.h"
#include "worker/load_publisher.h"

namespace turbine::worker {
namespace {

using runtime::Receiver;
using namespace std::chrono_literals;

constexpr kv::WorkerId kEngine = 5;
constexpr kv::WorkerId kWorker = 77;

std::unique_ptr<runtime::ZmqEventPlane> plane(bool publish) {
  runtime::ZmqEventPlaneOptions o;
  o.publish = publish;
  auto p = runtime::ZmqEventPlane::create(o);
  EXPECT_TRUE(p.isOk()) << p.status().message();
  return p.isOk() ? std::move(p).value() : nullptr;
}

struct Downstream {
  Receiver rx;  // first: destroyed after the plane that delivers into it
  std::unique_ptr<runtime::ZmqEventPlane> events = plane(false);
  Downstream() {
    events->subscribe(runtime::Topic::kKv, [this](const runtime::EventPayload& p) { rx.onPayload(p); });
    events->subscribe(runtime::Topic::kLoad, [this](const runtime::EventPayload& p) { rx.onPayload(p); });
  }
};

bool sameBlocks(const kv::KvBlockSet& a, const kv::KvBlockSet& b) {
  for (int t = 0; t < kv::kNumTiers; ++t) {
    if (a.hashes(static_cast<kv::Tier>(t)) != b.hashes(static_cast<kv::Tier>(t))) return false;
  }
  return true;
}

TEST(EventRelay, RepublishesTheEnginesEventsAsTheWorkers) {
  auto engine = plane(true);
  auto worker = plane(true);
  ASSERT_TRUE(engine && worker);
  EXPECT_EQ(EventRelay::start(worker.get(), "tcp://x;nope=1", {kWorker, "m", 16}).status().code(),
            StatusCode::kInvalidArgument);
  auto relay = EventRelay::start(worker.get(), engine->endpoint(), {kWorker, "m", 16});
  ASSERT_TRUE(relay.isOk()) << relay.status().message();
  Downstream early;
  ASSERT_TRUE(early.events->addPublisher(worker->endpoint(), kWorker).isOk());

  // Until both subscriptions have joined, the engine publishes probes (one block each).
  kv::KvBlockSet reference;
  uint64_t engine_seq = 1000;
  for (kv::BlockHash probe = 1;; ++probe) {
    kv::KvEventMessage msg{kEngine, engine_seq++, {kv::BlockStored{{probe}, std::nullopt, kv::Tier::kDevice}}};
    reference.apply(msg.events[0]);
    ASSERT_TRUE(engine->publish(msg).isOk());
    if (early.rx.waitFor([&] { return early.rx.blocks.contains(probe); }, 100ms)) break;
    ASSERT_LT(probe, 100u) << "the relay never delivered";
  }
  size_t joined_messages;
  {
    std::lock_guard lock(early.rx.mu);
    joined_messages = early.rx.kv_messages.size();
  }
  const uint64_t joined_relayed = (*relay)->relayed();

  // The engine's messages, numbered its way (with a hole), its own worker id.
  std::mt19937_64 rng(3);
  std::vector<kv::BlockHash> held;
  for (int i = 0; i < 60; ++i) {
    kv::KvEventMessage msg{kEngine, engine_seq++ + (i > 30 ? 5 : 0), {}};
    if (!held.empty() && i % 4 == 3) {
      msg.events.emplace_back(kv::BlockRemoved{{held.back()}, kv::Tier::kDevice});
      held.pop_back();
    }
    kv::BlockStored s;
    s.tier = kv::Tier::kDevice;
    for (int b = 0; b < 3; ++b) s.block_hashes.push_back(rng());
    held.insert(held.end(), s.block_hashes.begin(), s.block_hashes.end());
    msg.events.emplace_back(s);
    for (const kv::KvEvent& e : msg.events) reference.apply(e);
    ASSERT_TRUE(engine->publish(msg).isOk());
  }
  ASSERT_TRUE(early.rx.waitFor([&] { return sameBlocks(early.rx.blocks, reference); }))
      << "the worker's subscriber did not rebuild the engine's blocks: " << early.rx.blocks.hashes(kv::Tier::kDevice).size()
      << " vs " << reference.hashes(kv::Tier::kDevice).size() << ", messages " << early.rx.kv_messages.size() << ", relayed " << (*relay)->relayed() << " joined " << joined_messages;
  EXPECT_EQ((*relay)->relayed() - joined_relayed, 60u);
  {
    std::lock_guard lock(early.rx.mu);
    for (const kv::KvEventMessage& m : early.rx.kv_messages) EXPECT_EQ(m.worker_id, kWorker);
    ASSERT_EQ(early.rx.kv_messages.size() - joined_messages, 60u);
    // Consecutive seqs from the worker, whatever the engine's were.
    for (size_t i = joined_messages; i < early.rx.kv_messages.size(); ++i) {
      EXPECT_EQ(early.rx.kv_messages[i].seq, early.rx.kv_messages[i - 1].seq + 1) << i;
    }
  }

  // A subscriber joining now: the worker's snapshot holds the engine's whole cache.
  Downstream late;
  ASSERT_TRUE(late.events->addPublisher(worker->endpoint(), kWorker).isOk());
  ASSERT_TRUE(late.rx.waitFor([&] { return sameBlocks(late.rx.blocks, reference); }))
      << "the late subscriber did not get the engine's blocks";

  // Load reports go out on the same endpoint.
  LoadPublisher load(worker.get(), [] {
    kv::LoadMetrics m;
    m.worker_id = kWorker;
    m.running = 3;
    return m;
  }, {std::chrono::milliseconds(10000), std::chrono::milliseconds(1)});
  load.start();
  load.markChanged();
  ASSERT_TRUE(late.rx.waitFor([&] { return !late.rx.loads.empty(); })) << "no load report on a change";
  load.stop();  // and a last one
  ASSERT_TRUE(late.rx.waitFor([&] { return late.rx.loads.size() >= 2; })) << "no last load report";
  std::lock_guard lock(late.rx.mu);
  EXPECT_EQ(late.rx.loads.back().worker_id, kWorker);
  EXPECT_EQ(late.rx.loads.back().running, 3);
}

}  // namespace
}  // namespace turbine::worker
