// The embedded default's three planes: request (serve / connect / stopServing), discovery
// (register / watch / deregister, record JSON) and events (topics, order, flush, unsubscribe).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/in_process_discovery.h"
#include "runtime/in_process_event_plane.h"
#include "runtime/in_process_request_plane.h"

namespace turbine::runtime {
namespace {

// Answers every request with its prompt echoed back as one final chunk, on a thread of its own.
class EchoWorker : public WorkerClient {
 public:
  Status generate(GenerateRequest request, ChunkCallback on_chunk) override {
    if (request.token_ids.empty()) return invalidArgument("empty prompt");
    ++generated;
    std::thread([request = std::move(request), cb = std::move(on_chunk)]() mutable {
      GenerateChunk c;
      c.token_ids = request.token_ids;
      c.finish = FinishReason::kLength;
      c.usage = Usage{static_cast<int32_t>(request.token_ids.size()), 0, static_cast<int32_t>(request.token_ids.size())};
      cb(std::move(c));
    }).detach();
    return Status::ok();
  }
  void abort(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu);
    aborted.push_back(id);
  }
  Status health() override { return Status::ok(); }

  std::atomic<int> generated{0};
  std::mutex mu;
  std::vector<std::string> aborted;
};

TEST(InProcessRequestPlane, ForwardsToTheServedWorker) {
  InProcessRequestPlane plane;
  auto worker = std::make_shared<EchoWorker>();
  ASSERT_TRUE(plane.serve("w0", worker).isOk());
  auto client = plane.connect("w0");
  ASSERT_TRUE(client.isOk()) << client.status().toString();

  std::mutex mu;
  std::condition_variable cv;
  std::vector<GenerateChunk> got;
  GenerateRequest req;
  req.request_id = "r1";
  req.token_ids = {5, 6, 7};
  ASSERT_TRUE((*client)->generate(req, [&](GenerateChunk&& c) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(c));
    cv.notify_all();
  }).isOk());
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return !got.empty(); }));
  EXPECT_EQ(got[0].token_ids, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(got[0].finish, FinishReason::kLength);
  ASSERT_TRUE(got[0].usage.has_value());
  EXPECT_EQ(got[0].usage->prompt_tokens, 3);
  lock.unlock();

  // Errors of the worker come back as they are.
  GenerateRequest empty;
  EXPECT_EQ((*client)->generate(empty, [](GenerateChunk&&) {}).code(), StatusCode::kInvalidArgument);
  (*client)->abort("r1");
  std::lock_guard<std::mutex> alock(worker->mu);
  EXPECT_EQ(worker->aborted, (std::vector<std::string>{"r1"}));
}

TEST(InProcessRequestPlane, UnknownTakenAndStoppedEndpoints) {
  InProcessRequestPlane plane;
  EXPECT_EQ(plane.connect("nobody").status().code(), StatusCode::kNotFound);
  auto worker = std::make_shared<EchoWorker>();
  ASSERT_TRUE(plane.serve("w0", worker).isOk());
  EXPECT_EQ(plane.serve("w0", worker).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(plane.serve("", worker).code(), StatusCode::kInvalidArgument);
  auto client = plane.connect("w0");
  ASSERT_TRUE(client.isOk());
  EXPECT_TRUE((*client)->health().isOk());

  plane.stopServing("w0");
  EXPECT_EQ((*client)->health().code(), StatusCode::kUnavailable);
  GenerateRequest req;
  req.token_ids = {1};
  EXPECT_EQ((*client)->generate(req, [](GenerateChunk&&) {}).code(), StatusCode::kUnavailable);
  EXPECT_EQ(worker->generated.load(), 0);
  EXPECT_EQ(plane.connect("w0").status().code(), StatusCode::kNotFound);

  // A new worker at the same endpoint is not reached through the old client.
  auto second = std::make_shared<EchoWorker>();
  ASSERT_TRUE(plane.serve("w0", second).isOk());
  EXPECT_EQ((*client)->health().code(), StatusCode::kUnavailable);
  auto fresh = plane.connect("w0");
  ASSERT_TRUE(fresh.isOk());
  EXPECT_TRUE((*fresh)->generate(req, [](GenerateChunk&&) {}).isOk());
  EXPECT_EQ(second->generated.load(), 1);
}

WorkerRecord record(WorkerId id, std::string endpoint) {
  WorkerRecord r;
  r.worker_id = id;
  r.endpoint = std::move(endpoint);
  r.model_id = "m";
  r.block_size = 16;
  r.kv_blocks_total = 100 + static_cast<int32_t>(id);
  return r;
}

TEST(InProcessDiscovery, WatchSeesSnapshotThenChangesInOrder) {
  InProcessDiscovery d;
  ASSERT_TRUE(d.registerWorker(record(1, "a")).isOk());
  std::vector<std::pair<DiscoveryEvent::Kind, WorkerId>> seen;
  WatchId id = d.watch([&](const DiscoveryEvent& e) { seen.emplace_back(e.kind, e.record.worker_id); });
  ASSERT_TRUE(d.registerWorker(record(2, "b")).isOk());
  ASSERT_TRUE(d.registerWorker(record(2, "b")).isOk());   // identical: no change
  ASSERT_TRUE(d.registerWorker(record(2, "b2")).isOk());  // replaced: removed + added
  d.deregisterWorker(1);
  d.deregisterWorker(42);  // unknown: ignored
  using K = DiscoveryEvent::Kind;
  std::vector<std::pair<K, WorkerId>> want = {
      {K::kAdded, 1}, {K::kAdded, 2}, {K::kRemoved, 2}, {K::kAdded, 2}, {K::kRemoved, 1}};
  EXPECT_EQ(seen, want);
  auto all = d.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].endpoint, "b2");

  d.unwatch(id);
  ASSERT_TRUE(d.registerWorker(record(3, "c")).isOk());
  EXPECT_EQ(seen.size(), want.size());
  EXPECT_EQ(d.registerWorker(record(4, "")).code(), StatusCode::kInvalidArgument);
}

TEST(WorkerRecordJson, RoundTripsAndNamesBadFields) {
  WorkerRecord r = record(7, "grpc://10.0.0.7:9000");
  r.event_endpoint = "tcp://10.0.0.7:5557";
  r.role = "decode";
  r.max_model_len = 4096;
  r.transfer = {"tcp", "10.0.0.7:6000"};
  r.served_model_name = "llama";
  r.model_path = "/models/llama";
  const std::string text = workerRecordToJson(r);
  EXPECT_EQ(text.find(' '), std::string::npos);
  EXPECT_EQ(text.rfind("{\"worker_id\":7,\"endpoint\":\"grpc://10.0.0.7:9000\"", 0), 0u) << text;
  auto back = workerRecordFromJson(text);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, r);

  auto bad = workerRecordFromJson(R"({"worker_id":1,"endpoint":"x","event_endpoint":"","model_id":"m",
                                      "role":"agg","block_size":"16","kv_blocks_total":1})");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("block_size"), std::string::npos) << bad.status().message();
  auto missing = workerRecordFromJson(R"({"worker_id":1})");
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("endpoint"), std::string::npos);
  EXPECT_FALSE(workerRecordFromJson("[1,2").isOk());
  // The fields beyond DESIGN.md §3.5 are optional: a record without them still parses.
  auto minimal = workerRecordFromJson(R"({"worker_id":2,"endpoint":"x","event_endpoint":"","model_id":"m",
                                          "role":"agg","block_size":16,"kv_blocks_total":1})");
  ASSERT_TRUE(minimal.isOk()) << minimal.status().toString();
  EXPECT_EQ(minimal->served_model_name, "");
  EXPECT_EQ(minimal->model_path, "");
  auto mistyped = workerRecordFromJson(R"({"worker_id":2,"endpoint":"x","event_endpoint":"","model_id":"m",
                                           "role":"agg","block_size":16,"kv_blocks_total":1,"model_path":3})");
  ASSERT_FALSE(mistyped.isOk());
  EXPECT_NE(mistyped.status().message().find("model_path"), std::string::npos);
}

kv::KvEventMessage kvMessage(kv::WorkerId worker, uint64_t seq) {
  kv::KvEventMessage m;
  m.worker_id = worker;
  m.seq = seq;
  m.events.push_back(kv::BlockStored{{seq * 10 + 1}, std::nullopt, kv::Tier::kDevice});
  return m;
}

TEST(InProcessEventPlane, DeliversEachTopicInOrderToItsSubscribers) {
  InProcessEventPlane plane;
  std::vector<uint64_t> kv_seqs;
  std::vector<int32_t> loads;
  int all_kv = 0;
  plane.subscribe(Topic::kKv, [&](const EventPayload& p) {
    kv_seqs.push_back(std::get<kv::KvEventMessage>(p).seq);
  });
  plane.subscribe(Topic::kKv, [&](const EventPayload&) { ++all_kv; });
  plane.subscribe(Topic::kLoad, [&](const EventPayload& p) { loads.push_back(std::get<kv::LoadMetrics>(p).running); });
  for (uint64_t s = 0; s < 100; ++s) {
    ASSERT_TRUE(plane.publish(kvMessage(3, s)).isOk());
    kv::LoadMetrics m;
    m.running = static_cast<int32_t>(s);
    ASSERT_TRUE(plane.publish(m).isOk());
  }
  plane.flush();
  ASSERT_EQ(kv_seqs.size(), 100u);
  for (uint64_t s = 0; s < 100; ++s) EXPECT_EQ(kv_seqs[s], s);
  EXPECT_EQ(all_kv, 100);
  ASSERT_EQ(loads.size(), 100u);
  EXPECT_EQ(loads.back(), 99);
  EXPECT_EQ(topicName(Topic::kKv), "kv");
  EXPECT_EQ(topicName(Topic::kLoad), "load");
  EXPECT_EQ(plane.dropped(), 0u);
}

TEST(InProcessEventPlane, UnsubscribeStopsDeliveryAndClosedPlaneRefuses) {
  InProcessEventPlane plane;
  std::atomic<int> a{0}, b{0};
  SubscriptionId ida = plane.subscribe(Topic::kLoad, [&](const EventPayload&) { ++a; });
  plane.subscribe(Topic::kLoad, [&](const EventPayload&) { ++b; });
  ASSERT_TRUE(plane.publish(kv::LoadMetrics{}).isOk());
  plane.flush();
  plane.unsubscribe(ida);
  ASSERT_TRUE(plane.publish(kv::LoadMetrics{}).isOk());
  plane.flush();
  EXPECT_EQ(a.load(), 1);
  EXPECT_EQ(b.load(), 2);
  plane.close();
  EXPECT_EQ(plane.publish(kv::LoadMetrics{}).code(), StatusCode::kUnavailable);
  plane.flush();  // returns at once when closed
}

TEST(InProcessEventPlane, BoundedQueueDropsOldestWhenASubscriberIsStuck) {
  InProcessEventPlane plane({/*max_queued=*/4});
  std::mutex gate;
  std::unique_lock<std::mutex> hold(gate);
  std::atomic<int> delivered{0};
  std::atomic<bool> entered{false};
  plane.subscribe(Topic::kLoad, [&](const EventPayload&) {
    entered = true;
    std::lock_guard<std::mutex> wait(gate);
    ++delivered;
  });
  ASSERT_TRUE(plane.publish(kv::LoadMetrics{}).isOk());
  while (!entered) std::this_thread::yield();  // the delivery thread is now stuck on `gate`
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(plane.publish(kv::LoadMetrics{}).isOk());
  EXPECT_EQ(plane.dropped(), 6u);
  hold.unlock();
  plane.flush();
  EXPECT_EQ(delivered.load(), 5);
}

}  // namespace
}  // namespace turbine::runtime
