// etcd discovery against a real etcd on loopback (tests/runtime/etcd_harness.h): register, list,
// watch, re-register, deregister, lease expiry of a worker whose keepalives stop, a clean exit
// revoking the lease, malformed records, an unreachable etcd. Skipped when etcd is not installed.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/etcd_client.h"
#include "runtime/etcd_discovery.h"
#include "runtime/etcd_harness.h"

namespace turbine::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

WorkerRecord record(WorkerId id, int32_t blocks = 100) {
  WorkerRecord r;
  r.worker_id = id;
  r.endpoint = "127.0.0.1:" + std::to_string(5000 + id);
  r.event_endpoint = "tcp://127.0.0.1:6000;replay=tcp://127.0.0.1:6001";
  r.model_id = "tiny";
  r.kv_blocks_total = blocks;
  r.max_model_len = 2048;
  return r;
}

struct EventLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<DiscoveryEvent> events;
  DiscoveryCallback callback() {
    return [this](const DiscoveryEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(e);
      cv.notify_all();
    };
  }
  bool waitCount(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return events.size() >= n; });
  }
};

class EtcdDiscoveryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    etcd_ = new testing::EtcdHarness();
    skip_reason_ = new std::string(etcd_->start());
  }
  static void TearDownTestSuite() {
    delete etcd_;
    delete skip_reason_;
  }
  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_;
  }
  // A discovery client in this test's own namespace.
  std::unique_ptr<EtcdDiscovery> open(int ttl_s = 10) {
    EtcdDiscoveryOptions o;
    o.endpoint = etcd_->endpoint();
    o.namespace_name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    o.lease_ttl_s = ttl_s;
    auto d = EtcdDiscovery::create(o);
    EXPECT_TRUE(d.isOk()) << d.status().toString();
    return d.isOk() ? std::move(d).value() : nullptr;
  }

  static testing::EtcdHarness* etcd_;
  static std::string* skip_reason_;
};
testing::EtcdHarness* EtcdDiscoveryTest::etcd_ = nullptr;
std::string* EtcdDiscoveryTest::skip_reason_ = nullptr;

TEST(EtcdClient, Base64AndRangeEnd) {
  const std::string binary("\0\x01\xff\xfeturbine/x", 13);
  for (size_t n = 0; n <= binary.size(); ++n) {
    auto back = base64Decode(base64Encode(binary.substr(0, n)));
    ASSERT_TRUE(back.isOk());
    EXPECT_EQ(*back, binary.substr(0, n));
  }
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("ab"), "YWI=");
  EXPECT_EQ(base64Decode("Zm9v!").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(prefixRangeEnd("turbine/a/"), "turbine/a0");
  EXPECT_EQ(prefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(EtcdClient::create("https://x:1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EtcdClient::create("http://nohost").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(EtcdClient::create("127.0.0.1:2379").isOk());
  EXPECT_TRUE(EtcdClient::create("http://127.0.0.1:2379/").isOk());
  EXPECT_EQ(EtcdClient::create("http://127.0.0.1:2379/some/path").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EtcdClient::create("ftp://127.0.0.1:2379").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EtcdClient::create("").status().code(), StatusCode::kInvalidArgument);
}

TEST(EtcdDiscovery, UnreachableEtcdIsAClearError) {
  EtcdDiscoveryOptions o;
  o.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  o.request_timeout_ms = 500;
  auto d = EtcdDiscovery::create(o);
  ASSERT_FALSE(d.isOk());
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(d.status().message().find("127.0.0.1:1"), std::string::npos) << d.status().message();
  o.namespace_name = "a/b";
  EXPECT_EQ(EtcdDiscovery::create(o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EtcdDiscoveryTest, RegisterListDeregister) {
  auto d = open();
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->list().empty());
  ASSERT_TRUE(d->registerWorker(record(1)).isOk());
  ASSERT_TRUE(d->registerWorker(record(2)).isOk());
  auto listed = d->list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0], record(1));
  EXPECT_EQ(listed[1], record(2));
  // The key and value layout of DESIGN.md §3.5, seen with a plain client.
  auto raw = EtcdClient::create(etcd_->endpoint());
  ASSERT_TRUE(raw.isOk());
  auto range = raw->rangePrefix("turbine/RegisterListDeregister/workers/1");
  ASSERT_TRUE(range.isOk());
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_EQ(range->kvs[0].key, "turbine/RegisterListDeregister/workers/1");
  EXPECT_EQ(range->kvs[0].value, workerRecordToJson(record(1)));
  d->deregisterWorker(1);
  d->deregisterWorker(99);  // unknown: ignored
  listed = d->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].worker_id, 2u);
  EXPECT_EQ(d->leasesGranted(), 1u);
}

TEST_F(EtcdDiscoveryTest, WatchSeesWorkersAppearChangeAndVanish) {
  auto worker = open();
  auto frontend = open();
  ASSERT_TRUE(worker && frontend);
  ASSERT_TRUE(worker->registerWorker(record(1)).isOk());
  EventLog log;
  const WatchId id = frontend->watch(log.callback());
  ASSERT_TRUE(log.waitCount(1));  // the existing record
  ASSERT_TRUE(worker->registerWorker(record(2)).isOk());
  ASSERT_TRUE(log.waitCount(2));
  ASSERT_TRUE(worker->registerWorker(record(2, 555)).isOk());  // replaced: removed + added
  ASSERT_TRUE(log.waitCount(4));
  worker->deregisterWorker(1);
  ASSERT_TRUE(log.waitCount(5));
  {
    std::lock_guard<std::mutex> lock(log.mu);
    using K = DiscoveryEvent::Kind;
    ASSERT_EQ(log.events.size(), 5u);
    EXPECT_EQ(log.events[0].kind, K::kAdded);
    EXPECT_EQ(log.events[0].record, record(1));
    EXPECT_EQ(log.events[1].kind, K::kAdded);
    EXPECT_EQ(log.events[1].record, record(2));
    EXPECT_EQ(log.events[2].kind, K::kRemoved);
    EXPECT_EQ(log.events[2].record.kv_blocks_total, 100);
    EXPECT_EQ(log.events[3].kind, K::kAdded);
    EXPECT_EQ(log.events[3].record.kv_blocks_total, 555);
    EXPECT_EQ(log.events[4].kind, K::kRemoved);
    EXPECT_EQ(log.events[4].record, record(1));  // the record as it was
  }
  // A second watcher starts from the current state.
  EventLog late;
  const WatchId id2 = frontend->watch(late.callback());
  ASSERT_TRUE(late.waitCount(1));
  frontend->unwatch(id);
  worker->deregisterWorker(2);
  ASSERT_TRUE(late.waitCount(2));
  std::this_thread::sleep_for(100ms);
  std::lock_guard<std::mutex> lock(log.mu);
  EXPECT_EQ(log.events.size(), 5u);  // unwatched: told nothing more
  frontend->unwatch(id2);
}

TEST_F(EtcdDiscoveryTest, LeaseExpiryRemovesAWorkerWhoseKeepAliveStops) {
  auto dead = open(2);
  auto alive = open(2);
  auto frontend = open();
  ASSERT_TRUE(dead && alive && frontend);
  ASSERT_TRUE(dead->registerWorker(record(1)).isOk());
  ASSERT_TRUE(alive->registerWorker(record(2)).isOk());
  EventLog log;
  frontend->watch(log.callback());
  ASSERT_TRUE(log.waitCount(2));
  const auto t0 = Clock::now();
  dead->stopKeepAliveForTesting();
  ASSERT_TRUE(log.waitCount(3, 8000ms)) << "worker 1 was not removed after its lease stopped";
  const auto took = Clock::now() - t0;
  EXPECT_LE(took, 5000ms);  // TTL 2 s (+ etcd's expiry check)
  {
    std::lock_guard<std::mutex> lock(log.mu);
    EXPECT_EQ(log.events[2].kind, DiscoveryEvent::Kind::kRemoved);
    EXPECT_EQ(log.events[2].record.worker_id, 1u);
  }
  // The one that keeps its lease alive is still there, well past its TTL.
  std::this_thread::sleep_for(1500ms);
  auto listed = frontend->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].worker_id, 2u);
}

TEST_F(EtcdDiscoveryTest, CleanExitRevokesTheLeaseAtOnce) {
  auto worker = open(10);
  auto frontend = open();
  ASSERT_TRUE(worker && frontend);
  ASSERT_TRUE(worker->registerWorker(record(3)).isOk());
  EventLog log;
  frontend->watch(log.callback());
  ASSERT_TRUE(log.waitCount(1));
  const auto t0 = Clock::now();
  worker.reset();
  ASSERT_TRUE(log.waitCount(2, 3000ms));  // far sooner than the 10 s TTL
  EXPECT_LT(Clock::now() - t0, 3000ms);
  EXPECT_TRUE(frontend->list().empty());
}

TEST_F(EtcdDiscoveryTest, MalformedRecordsAreSkipped) {
  auto d = open();
  ASSERT_TRUE(d);
  auto raw = EtcdClient::create(etcd_->endpoint());
  ASSERT_TRUE(raw.isOk());
  ASSERT_TRUE(raw->put(d->prefix() + "7", "{not json").isOk());
  ASSERT_TRUE(d->registerWorker(record(8)).isOk());
  auto listed = d->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].worker_id, 8u);
  EXPECT_GE(d->malformedRecords(), 1u);
}

}  // namespace
}  // namespace turbine::runtime
