// Worker over the engine with FakeRunner (tests/engine/fake_runner.h): discovery record,
// generation through the request plane (tokens equal the fake model's greedy continuation),
// KV events and load metrics on the event plane, abort, shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/fake_runner.h"
#include "runtime/in_process_discovery.h"
#include "runtime/in_process_event_plane.h"
#include "runtime/in_process_request_plane.h"
#include "worker/worker.h"

namespace turbine::worker {
namespace {

using engine::testing::FakeRunner;
using namespace std::chrono_literals;

constexpr int32_t kVocab = 64;
constexpr int32_t kBlock = 4;

// Collects one request's chunks.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<runtime::GenerateChunk> chunks;
  bool done = false;

  runtime::ChunkCallback callback() {
    return [this](runtime::GenerateChunk&& c) {
      std::lock_guard<std::mutex> lock(mu);
      if (c.finish != runtime::FinishReason::kNone) done = true;
      chunks.push_back(std::move(c));
      cv.notify_all();
    };
  }
  bool wait(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return done; });
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<int32_t> out;
    for (auto& c : chunks) out.insert(out.end(), c.token_ids.begin(), c.token_ids.end());
    return out;
  }
  runtime::GenerateChunk last() {
    std::lock_guard<std::mutex> lock(mu);
    return chunks.back();
  }
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kv_sub_ = events_.subscribe(runtime::Topic::kKv, [this](const runtime::EventPayload& p) {
      std::lock_guard<std::mutex> lock(mu_);
      const auto& msg = std::get<kv::KvEventMessage>(p);
      kv_status_ = blocks_.apply(msg);
      kv_worker_ = msg.worker_id;
    });
    load_sub_ = events_.subscribe(runtime::Topic::kLoad, [this](const runtime::EventPayload& p) {
      std::lock_guard<std::mutex> lock(mu_);
      loads_.push_back(std::get<kv::LoadMetrics>(p));
      cv_.notify_all();
    });
  }
  void TearDown() override {
    if (worker_) worker_->shutdown();
    events_.close();
  }

  void start(FakeRunner** raw = nullptr, int32_t blocks = 64) {
    auto runner = std::make_unique<FakeRunner>(kVocab, kBlock, blocks, 512);
    if (raw) *raw = runner.get();
    WorkerOptions wo;
    wo.worker_id = 3;
    wo.model_id = "fake";
    wo.load_interval = 20ms;
    auto w = Worker::start(std::move(runner), engine::EngineOptions{}, wo, {&requests_, &discovery_, &events_});
    ASSERT_TRUE(w.isOk()) << w.status().toString();
    worker_ = *w;
    auto c = requests_.connect("worker-3");
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    client_ = *c;
  }

  runtime::GenerateRequest request(const std::string& id, std::vector<int32_t> prompt, int32_t max_tokens) {
    runtime::GenerateRequest r;
    r.request_id = id;
    r.token_ids = std::move(prompt);
    r.sampling.temperature = 0;
    r.stop.max_tokens = max_tokens;
    r.stop.ignore_eos = true;
    return r;
  }

  // Waits for a load report that satisfies `pred`.
  template <typename Pred>
  bool waitLoad(Pred pred, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return !loads_.empty() && pred(loads_.back()); });
  }

  runtime::InProcessRequestPlane requests_;
  runtime::InProcessDiscovery discovery_;
  runtime::InProcessEventPlane events_;
  std::shared_ptr<Worker> worker_;
  std::shared_ptr<runtime::WorkerClient> client_;
  runtime::SubscriptionId kv_sub_ = 0, load_sub_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  kv::KvBlockSet blocks_;
  Status kv_status_;
  kv::WorkerId kv_worker_ = 99;
  std::vector<kv::LoadMetrics> loads_;
};

TEST_F(WorkerTest, RegistersItsRecord) {
  start();
  auto records = discovery_.list();
  ASSERT_EQ(records.size(), 1u);
  const auto& r = records[0];
  EXPECT_EQ(r.worker_id, 3u);
  EXPECT_EQ(r.endpoint, "worker-3");
  EXPECT_EQ(r.model_id, "fake");
  EXPECT_EQ(r.role, "agg");
  EXPECT_EQ(r.block_size, kBlock);
  EXPECT_EQ(r.kv_blocks_total, 64);
  EXPECT_EQ(r.max_model_len, 512);
  EXPECT_EQ(r, worker_->record());
  EXPECT_TRUE(client_->health().isOk());
}

TEST_F(WorkerTest, GeneratesTheGreedyContinuationWithUsageAndKvEvents) {
  start();
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  Collector col;
  ASSERT_TRUE(client_->generate(request("r1", prompt, 12), col.callback()).isOk());
  ASSERT_TRUE(col.wait());
  EXPECT_EQ(col.tokens(), engine::testing::fakeGreedy(prompt, kVocab, 12));
  auto last = col.last();
  EXPECT_EQ(last.finish, runtime::FinishReason::kLength);
  EXPECT_TRUE(last.error.isOk());
  ASSERT_TRUE(last.usage.has_value());
  EXPECT_EQ(last.usage->prompt_tokens, 10);
  EXPECT_EQ(last.usage->completion_tokens, 12);
  EXPECT_EQ(last.usage->cached_tokens, 0);

  // The same prompt again: its two full blocks come from the prefix cache.
  Collector again;
  ASSERT_TRUE(client_->generate(request("r2", prompt, 2), again.callback()).isOk());
  ASSERT_TRUE(again.wait());
  ASSERT_TRUE(again.last().usage.has_value());
  EXPECT_EQ(again.last().usage->cached_tokens, 8);

  events_.flush();
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_TRUE(kv_status_.isOk()) << kv_status_.toString();
  EXPECT_EQ(kv_worker_, 3u);
  // The prompt's first full block, hashed per DESIGN.md §3.1 with the worker's model id.
  const auto hashes = kv::blockHashes(kv::rootHash("fake", ""), prompt, kBlock);
  ASSERT_EQ(hashes.size(), 2u);
  EXPECT_TRUE(blocks_.contains(hashes[0]));
  EXPECT_TRUE(blocks_.contains(hashes[1]));
}

TEST_F(WorkerTest, LogprobsAndRefusals) {
  start();
  auto r = request("lp", {5, 6, 7}, 3);
  r.sampling.logprobs = 2;
  Collector col;
  ASSERT_TRUE(client_->generate(r, col.callback()).isOk());
  ASSERT_TRUE(col.wait());
  size_t n = 0;
  for (auto& c : col.chunks) {
    ASSERT_EQ(c.logprobs.size(), c.token_ids.size());
    for (size_t i = 0; i < c.token_ids.size(); ++i) {
      EXPECT_EQ(c.logprobs[i].token_id, c.token_ids[i]);
      EXPECT_LE(c.logprobs[i].logprob, 0.0f);
      ASSERT_EQ(c.logprobs[i].top.size(), 2u);
      EXPECT_EQ(c.logprobs[i].top[0].first, c.token_ids[i]);  // greedy: the chosen one is the best
      ++n;
    }
  }
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(client_->generate(request("bad", {kVocab + 1}, 3), [](runtime::GenerateChunk&&) {}).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(WorkerTest, PublishesLoadPeriodicallyAndOnChange) {
  FakeRunner* runner = nullptr;
  start(&runner);
  ASSERT_TRUE(waitLoad([](const kv::LoadMetrics& m) { return m.worker_id == 3 && m.kv_blocks_total == 64; }));
  runner->on_forward = [](const engine::Batch&) { std::this_thread::sleep_for(2ms); };
  Collector col;
  ASSERT_TRUE(client_->generate(request("long", {1, 2, 3, 4, 5, 6, 7, 8, 9}, 400), col.callback()).isOk());
  ASSERT_TRUE(waitLoad([](const kv::LoadMetrics& m) { return m.running == 1 && m.kv_blocks_used >= 3; }));

  // Abort ends the request and frees its blocks; a report with nothing used follows.
  client_->abort("long");
  ASSERT_TRUE(col.wait());
  EXPECT_EQ(col.last().finish, runtime::FinishReason::kAbort);
  EXPECT_LT(col.tokens().size(), 400u);
  ASSERT_TRUE(waitLoad([](const kv::LoadMetrics& m) { return m.running == 0 && m.kv_blocks_used == 0; }));
  EXPECT_GT(loads_.back().ts_ms, 0);
}

TEST_F(WorkerTest, ShutdownDeregistersAndRefuses) {
  FakeRunner* runner = nullptr;
  start(&runner);
  runner->on_forward = [](const engine::Batch&) { std::this_thread::sleep_for(1ms); };
  Collector col;
  ASSERT_TRUE(client_->generate(request("inflight", {1, 2, 3}, 300), col.callback()).isOk());
  worker_->shutdown(engine::Engine::ShutdownMode::kAbort);
  ASSERT_TRUE(col.wait(1s));  // every admitted request gets its final chunk
  // Cut off by the shutdown: an error that says so (the frontend answers it as such).
  const auto last = col.last();
  EXPECT_EQ(last.finish, runtime::FinishReason::kError);
  EXPECT_NE(last.error.message().find("shut"), std::string::npos) << last.error.toString();
  EXPECT_TRUE(discovery_.list().empty());
  EXPECT_EQ(client_->health().code(), StatusCode::kUnavailable);
  EXPECT_EQ(client_->generate(request("late", {1}, 1), [](runtime::GenerateChunk&&) {}).code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(worker_->health().code(), StatusCode::kUnavailable);
}

TEST(WorkerStart, NeedsPlanesAndAFreeEndpoint) {
  runtime::InProcessRequestPlane requests;
  runtime::InProcessDiscovery discovery;
  runtime::InProcessEventPlane events;
  auto runner = [] { return std::make_unique<FakeRunner>(kVocab, kBlock, 16, 64); };
  WorkerOptions wo;
  wo.model_id = "fake";
  EXPECT_EQ(Worker::start(runner(), {}, wo, {&requests, nullptr, &events}).status().code(),
            StatusCode::kInvalidArgument);
  auto first = Worker::start(runner(), {}, wo, {&requests, &discovery, &events});
  ASSERT_TRUE(first.isOk());
  auto second = Worker::start(runner(), {}, wo, {&requests, &discovery, &events});
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  // The failed start did not take the first worker's endpoint or record away.
  EXPECT_TRUE(requests.connect("worker-0").isOk());
  EXPECT_EQ(discovery.list().size(), 1u);
  (*first)->shutdown();
  events.close();
}

}  // namespace
}  // namespace turbine::worker
