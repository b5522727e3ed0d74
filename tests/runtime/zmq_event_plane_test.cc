// ZeroMQ event plane on loopback: codec round trips and clear errors, pub/sub of KV events and
// load metrics, a lost frame repaired by replay, a lost stretch longer than the replay buffer
// repaired by a snapshot, a publisher without replay (entries dropped), and a late joiner.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "runtime/event_receiver.h"
#include "runtime/zmq_codec.h"
#include "runtime/zmq_event_plane.h"

namespace turbine::runtime {
namespace {

using namespace std::chrono_literals;

// Random KV events of one worker, and the reference set they build.
class EventSource {
 public:
  explicit EventSource(kv::WorkerId worker, uint32_t seed) : worker_(worker), rng_(seed) {}
  kv::KvEventMessage next() {
    kv::KvEventMessage msg{worker_, seq_++, {}};
    if (!held_.empty() && rng_() % 3 == 0) {
      kv::BlockRemoved r{{*held_.begin()}, kv::Tier::kDevice};
      held_.erase(held_.begin());
      msg.events.emplace_back(r);
    }
    kv::BlockStored s;
    s.tier = rng_() % 4 == 0 ? kv::Tier::kHost : kv::Tier::kDevice;
    for (int i = 0; i < 3; ++i) s.block_hashes.push_back(rng_());
    if (s.tier == kv::Tier::kDevice) held_.insert(s.block_hashes.begin(), s.block_hashes.end());
    msg.events.emplace_back(s);
    for (const kv::KvEvent& e : msg.events) reference.apply(e);
    return msg;
  }
  kv::KvBlockSet reference;

 private:
  kv::WorkerId worker_;
  uint64_t seq_ = 0;
  std::mt19937_64 rng_;
  std::set<uint64_t> held_;
};

bool sameBlocks(const kv::KvBlockSet& a, const kv::KvBlockSet& b) {
  for (int t = 0; t < kv::kNumTiers; ++t) {
    if (a.hashes(static_cast<kv::Tier>(t)) != b.hashes(static_cast<kv::Tier>(t))) return false;
  }
  return true;
}

struct Pair {
  Receiver rx;  // first, so destroyed last: the subscriber's thread delivers into it until closed
  std::unique_ptr<ZmqEventPlane> pub;
  std::unique_ptr<ZmqEventPlane> sub;
};

// A publisher plane, a subscribe-only plane connected to it, the receiver on both topics; returns
// once a load message got through (the PUB/SUB connection is up).
void connect(Pair& p, ZmqEventPlaneOptions pub_opts, ZmqSubscriberOptions sub_opts) {
  auto pub = ZmqEventPlane::create(std::move(pub_opts));
  ASSERT_TRUE(pub.isOk()) << pub.status().toString();
  p.pub = std::move(pub).value();
  ZmqEventPlaneOptions so;
  so.publish = false;
  so.subscriber = std::move(sub_opts);
  auto sub = ZmqEventPlane::create(std::move(so));
  ASSERT_TRUE(sub.isOk());
  p.sub = std::move(sub).value();
  p.sub->subscribe(Topic::kKv, [&p](const EventPayload& e) { p.rx.onPayload(e); });
  p.sub->subscribe(Topic::kLoad, [&p](const EventPayload& e) { p.rx.onPayload(e); });
  ASSERT_TRUE(p.sub->addPublisher(p.pub->endpoint(), 7).isOk());
  for (int i = 0; i < 250; ++i) {
    ASSERT_TRUE(p.pub->publish(kv::LoadMetrics{.worker_id = 7, .running = i}).isOk());
    if (p.rx.waitFor([&] { return !p.rx.loads.empty(); }, 20ms)) break;
  }
  ASSERT_FALSE(p.rx.loads.empty()) << "subscriber never connected to " << p.pub->endpoint();
  // With replay, the join's snapshot request is answered before the test publishes KV events.
  const bool replay = p.pub->endpoint().find(";replay=") != std::string::npos;
  for (int i = 0; replay && i < 250 && p.sub->subscriberStats().snapshots == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(!replay || p.sub->subscriberStats().snapshots == 1);
}

TEST(ZmqCodec, KvAndLoadRoundTrip) {
  kv::KvEventMessage msg{42, 9, {}};
  msg.events.emplace_back(kv::BlockStored{{1, 2, 0xffffffffffffffffull}, std::nullopt, kv::Tier::kDevice});
  msg.events.emplace_back(kv::BlockStored{{5}, 2, kv::Tier::kDisk});
  msg.events.emplace_back(kv::BlockRemoved{{1}, kv::Tier::kHost});
  msg.events.emplace_back(kv::AllCleared{});
  auto back = zmq_codec::decodeKvMessage(zmq_codec::encodeKvMessage(msg));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, msg);

  kv::LoadMetrics l{3, "decode", 4, 5, 100, 60, 7, 1234.5, 88.25, 1700000000123, 400, 300, 9000, 8};
  auto lb = zmq_codec::decodeLoadMetrics(zmq_codec::encodeLoadMetrics(l));
  ASSERT_TRUE(lb.isOk());
  EXPECT_EQ(lb->kv_host_blocks_total, 400);
  EXPECT_EQ(lb->kv_host_blocks_used, 300);
  EXPECT_EQ(lb->kv_disk_blocks_total, 9000);
  EXPECT_EQ(lb->kv_disk_blocks_used, 8);
  EXPECT_EQ(lb->worker_id, 3u);
  EXPECT_EQ(lb->role, "decode");
  EXPECT_EQ(lb->kv_blocks_used, 60);
  EXPECT_DOUBLE_EQ(lb->tokens_per_s_prefill, 1234.5);
  EXPECT_EQ(lb->ts_ms, 1700000000123);

  auto seq = zmq_codec::decodeSeq(zmq_codec::encodeSeq(0x0102030405060708ull));
  ASSERT_TRUE(seq.isOk());
  EXPECT_EQ(*seq, 0x0102030405060708ull);
  EXPECT_EQ(zmq_codec::encodeSeq(1), std::string("\0\0\0\0\0\0\0\1", 8));
}

TEST(ZmqCodec, MalformedPayloadsAreClearErrors) {
  auto garbage = zmq_codec::decodeKvMessage("\xc1\xc1");
  EXPECT_EQ(garbage.status().code(), StatusCode::kDataLoss);
  auto not_map = zmq_codec::decodeKvMessage(std::string("\x93\x01\x02\x03"));  // [1, 2, 3]
  EXPECT_EQ(not_map.status().code(), StatusCode::kDataLoss);
  // {"worker_id": 1, "seq": 0} without "events".
  auto missing = zmq_codec::decodeKvMessage(std::string("\x82\xa9worker_id\x01\xa3seq\x00", 17));
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("events"), std::string::npos) << missing.status().message();
  EXPECT_FALSE(zmq_codec::decodeSeq("1234567").isOk());
  EXPECT_FALSE(zmq_codec::parseTopic("kvx").isOk());
  EXPECT_FALSE(parseEventEndpoint("").isOk());
  EXPECT_FALSE(parseEventEndpoint("tcp://127.0.0.1:1;replay=").isOk());
  auto ep = parseEventEndpoint("tcp://127.0.0.1:1;replay=tcp://127.0.0.1:2");
  ASSERT_TRUE(ep.isOk());
  EXPECT_EQ(ep->replay, "tcp://127.0.0.1:2");
}

TEST(ZmqEventPlane, KvEventsAndLoadMetricsRoundTrip) {
  Pair p;
  connect(p, {}, {});
  EventSource src(7, 1);
  std::vector<kv::KvEventMessage> sent;
  for (int i = 0; i < 50; ++i) {
    sent.push_back(src.next());
    ASSERT_TRUE(p.pub->publish(sent.back()).isOk());
  }
  ASSERT_TRUE(p.pub->publish(kv::LoadMetrics{7, "agg", 2, 3, 64, 10, 4, 1.5, 2.5, 99}).isOk());
  ASSERT_TRUE(p.rx.waitFor([&] { return p.rx.kv_messages.size() >= sent.size() &&
                                        p.rx.loads.back().ts_ms == 99; }));
  std::lock_guard<std::mutex> lock(p.rx.mu);
  EXPECT_EQ(p.rx.kv_messages, sent);
  EXPECT_EQ(p.rx.loads.back().kv_blocks_used, 10);
  EXPECT_TRUE(sameBlocks(p.rx.blocks, src.reference));
  EXPECT_EQ(p.sub->subscriberStats().gaps, 0u);
}

TEST(ZmqEventPlane, LostFrameIsReplayedAndReceiverConverges) {
  Pair p;
  ZmqSubscriberOptions so;
  std::atomic<int> dropped{0};
  so.drop_for_test = [&](Topic t, uint64_t seq) { return t == Topic::kKv && seq == 3 && dropped++ == 0; };
  connect(p, {}, so);
  EventSource src(7, 2);
  std::vector<kv::KvEventMessage> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back(src.next());
    ASSERT_TRUE(p.pub->publish(sent.back()).isOk());
  }
  ASSERT_TRUE(p.rx.waitFor([&] { return p.rx.kv_messages.size() >= sent.size(); }));
  EXPECT_EQ(dropped.load(), 1);
  const ZmqSubscriberStats stats = p.sub->subscriberStats();
  EXPECT_EQ(stats.gaps, 1u);
  EXPECT_EQ(stats.replays, 1u);
  EXPECT_EQ(stats.cleared, 0u);
  std::lock_guard<std::mutex> lock(p.rx.mu);
  EXPECT_EQ(p.rx.kv_messages, sent);  // in order, nothing missing, nothing twice
  EXPECT_TRUE(sameBlocks(p.rx.blocks, src.reference));
  EXPECT_EQ(p.pub->publisher()->replaysServed(), 1u);
}

TEST(ZmqEventPlane, LostLastFrameIsFoundByTheTailProbe) {
  Pair p;
  ZmqSubscriberOptions so;
  so.tail_probe_ms = 100;
  so.drop_for_test = [&](Topic t, uint64_t seq) { return t == Topic::kKv && seq == 5; };
  connect(p, {}, so);
  EventSource src(7, 6);
  std::vector<kv::KvEventMessage> sent;
  for (int i = 0; i < 6; ++i) {  // seqs 0..5: the last one is lost, and nothing comes after it
    sent.push_back(src.next());
    ASSERT_TRUE(p.pub->publish(sent.back()).isOk());
  }
  ASSERT_TRUE(p.rx.waitFor([&] { return p.rx.kv_messages.size() >= sent.size(); }));
  const ZmqSubscriberStats stats = p.sub->subscriberStats();
  EXPECT_EQ(stats.gaps, 0u);  // no later frame revealed it
  EXPECT_GE(stats.tail_probes, 1u);
  EXPECT_EQ(stats.replays, 1u);
  std::lock_guard<std::mutex> lock(p.rx.mu);
  EXPECT_EQ(p.rx.kv_messages, sent);
  EXPECT_TRUE(sameBlocks(p.rx.blocks, src.reference));
}

TEST(ZmqEventPlane, TailProbeOfAnIntactStreamChangesNothing) {
  Pair p;
  ZmqSubscriberOptions so;
  so.tail_probe_ms = 50;
  connect(p, {}, so);
  EventSource src(7, 8);
  std::vector<kv::KvEventMessage> sent;
  for (int i = 0; i < 4; ++i) {
    sent.push_back(src.next());
    ASSERT_TRUE(p.pub->publish(sent.back()).isOk());
  }
  ASSERT_TRUE(p.rx.waitFor([&] { return p.sub->subscriberStats().tail_probes >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the probe's (empty) answer arrives
  const ZmqSubscriberStats stats = p.sub->subscriberStats();
  EXPECT_EQ(stats.tail_probes, 1u);  // one probe per quiet spell, not one per poll
  EXPECT_EQ(stats.replays, 0u);
  std::lock_guard<std::mutex> lock(p.rx.mu);
  EXPECT_EQ(p.rx.kv_messages, sent);
}

TEST(ZmqEventPlane, LossBeyondReplayBufferIsRepairedBySnapshot) {
  Pair p;
  ZmqEventPlaneOptions po;
  po.publisher.replay_buffer = 4;
  ZmqSubscriberOptions so;
  so.drop_for_test = [](Topic t, uint64_t seq) { return t == Topic::kKv && seq >= 2 && seq < 12; };
  connect(p, po, so);
  EventSource src(7, 3);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.pub->publish(src.next()).isOk());
  // Converged: the receiver's blocks equal the reference (what all 20 messages built).
  EXPECT_TRUE(p.rx.waitFor([&] { return sameBlocks(p.rx.blocks, src.reference) && p.rx.kv_messages.size() > 2; }));
  const ZmqSubscriberStats stats = p.sub->subscriberStats();
  EXPECT_GE(stats.gaps, 1u);
  EXPECT_GE(stats.snapshots, 2u);  // the join's, and the repair's
  EXPECT_EQ(stats.replays, 0u);
  std::lock_guard<std::mutex> lock(p.rx.mu);
  // The repair delivered one message that starts with "cleared".
  bool saw_snapshot = false;
  for (size_t i = 1; i < p.rx.kv_messages.size(); ++i) {
    const auto& ev = p.rx.kv_messages[i].events;
    if (!ev.empty() && std::holds_alternative<kv::AllCleared>(ev[0])) saw_snapshot = true;
  }
  EXPECT_TRUE(saw_snapshot);
}

TEST(ZmqEventPlane, WithoutReplayTheWorkersEntriesAreDropped) {
  Pair p;
  ZmqEventPlaneOptions po;
  po.publisher.replay_bind = "";
  ZmqSubscriberOptions so;
  so.drop_for_test = [](Topic t, uint64_t seq) { return t == Topic::kKv && seq == 1; };
  connect(p, po, so);
  EXPECT_EQ(p.pub->endpoint().find(";replay="), std::string::npos);
  EventSource src(7, 4);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.pub->publish(src.next()).isOk());
  ASSERT_TRUE(p.rx.waitFor([&] { return p.rx.kv_messages.size() >= 4; }));  // 0, cleared, 2, 3
  EXPECT_EQ(p.sub->subscriberStats().cleared, 1u);
  std::lock_guard<std::mutex> lock(p.rx.mu);
  ASSERT_EQ(p.rx.kv_messages.size(), 4u);
  EXPECT_EQ(p.rx.kv_messages[1].worker_id, 7u);
  ASSERT_EQ(p.rx.kv_messages[1].events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<kv::AllCleared>(p.rx.kv_messages[1].events[0]));
  EXPECT_EQ(p.rx.kv_messages[3].seq, 3u);
  // Messages 0 and 1 are forgotten: the receiver holds only what 2 and 3 stored.
  EXPECT_FALSE(sameBlocks(p.rx.blocks, src.reference));
}

TEST(ZmqEventPlane, LateJoinerStartsFromSnapshot) {
  auto pub = ZmqEventPlane::create({});
  ASSERT_TRUE(pub.isOk());
  EventSource src(11, 5);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE((*pub)->publish(src.next()).isOk());  // nobody listens
  Receiver rx;
  ZmqEventPlaneOptions so;
  so.publish = false;
  auto sub = ZmqEventPlane::create(so);
  ASSERT_TRUE(sub.isOk());
  (*sub)->subscribe(Topic::kKv, [&](const EventPayload& e) { rx.onPayload(e); });
  ASSERT_TRUE((*sub)->addPublisher((*pub)->endpoint()).isOk());
  EXPECT_EQ((*sub)->addPublisher((*pub)->endpoint()).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(rx.waitFor([&] { return !rx.kv_messages.empty(); }));
  std::lock_guard<std::mutex> lock(rx.mu);
  EXPECT_EQ(rx.kv_messages[0].worker_id, 11u);
  EXPECT_EQ(rx.kv_messages[0].seq, 29u);  // the next message (30) follows without a gap
  EXPECT_TRUE(sameBlocks(rx.blocks, src.reference));
}

TEST(ZmqEventPlane, SubscribeOnlyPlaneRefusesPublishAndUnsubscribeStops) {
  ZmqEventPlaneOptions so;
  so.publish = false;
  auto sub = ZmqEventPlane::create(so);
  ASSERT_TRUE(sub.isOk());
  EXPECT_EQ((*sub)->publish(kv::LoadMetrics{}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*sub)->endpoint(), "");
  EXPECT_EQ((*sub)->addPublisher("").code(), StatusCode::kInvalidArgument);

  Pair p;
  connect(p, {}, {});
  std::atomic<int> seen{0};
  const SubscriptionId id = p.sub->subscribe(Topic::kLoad, [&](const EventPayload&) { ++seen; });
  p.sub->unsubscribe(id);
  const int before = seen.load();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(p.pub->publish(kv::LoadMetrics{.worker_id = 7, .ts_ms = 5}).isOk());
  ASSERT_TRUE(p.rx.waitFor([&] { return p.rx.loads.back().ts_ms == 5; }));
  EXPECT_EQ(seen.load(), before);
}

}  // namespace
}  // namespace turbine::runtime
