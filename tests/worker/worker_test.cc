// Worker over the engine with FakeRunner (tests/engine/fake_runner.h): discovery record,
// generation through the request plane (tokens equal the fake model's greedy continuation),
// KV events and load metrics on the event plane, abort, shutdown.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

// A greedy request of exactly max_tokens tokens (EOS ignored).
runtime::GenerateRequest request(const std::string& id, std::vector<int32_t> prompt, int32_t max_tokens) {
  runtime::GenerateRequest r;
  r.request_id = id;
  r.token_ids = std::move(prompt);
  r.sampling.temperature = 0;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

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
  // Prompt logprobs come with the first chunk, through the worker's translation.
  auto p = request("plp", {5, 6, 7, 8}, 2);
  p.sampling.prompt_logprobs = 1;
  Collector pc;
  ASSERT_TRUE(client_->generate(p, pc.callback()).isOk());
  ASSERT_TRUE(pc.wait());
  ASSERT_TRUE(pc.chunks.front().prompt_logprobs.has_value());
  const auto& scores = *pc.chunks.front().prompt_logprobs;
  ASSERT_EQ(scores.size(), 3u);
  for (size_t i = 0; i < scores.size(); ++i) {
    EXPECT_EQ(scores[i].token_id, p.token_ids[i + 1]);
    EXPECT_LE(scores[i].logprob, 0.0f);
    EXPECT_GE(scores[i].rank, 1);
    EXPECT_EQ(scores[i].top.size(), 1u);
  }
  for (size_t i = 1; i < pc.chunks.size(); ++i) EXPECT_FALSE(pc.chunks[i].prompt_logprobs.has_value());
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

// Disaggregated serving between two workers on the same planes: a prefill worker (FakeRunner,
// whose logits depend on the KV it reads back) serves its blocks over TCP; a decode worker
// fetches them for a decode leg and computes only the rest.
class DisaggWorkerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& w : workers_) w->shutdown();
    events_.close();
  }
  std::shared_ptr<Worker> startWorker(kv::WorkerId id, const std::string& role, FakeRunner** raw,
                                      std::chrono::milliseconds timeout = 10s) {
    auto runner = std::make_unique<FakeRunner>(kVocab, kBlock, 64, 512);
    *raw = runner.get();
    WorkerOptions wo;
    wo.worker_id = id;
    wo.model_id = "fake";
    wo.role = role;
    wo.transfer_timeout = timeout;
    auto w = Worker::start(std::move(runner), engine::EngineOptions{}, wo, {&requests_, &discovery_, &events_});
    EXPECT_TRUE(w.isOk()) << w.status().toString();
    if (!w.isOk()) return nullptr;
    workers_.push_back(*w);
    return *w;
  }

  runtime::InProcessRequestPlane requests_;
  runtime::InProcessDiscovery discovery_;
  runtime::InProcessEventPlane events_;
  std::vector<std::shared_ptr<Worker>> workers_;
};

TEST_F(DisaggWorkerTest, APrefillLegThenADecodeLegThatFetchesItsBlocks) {
  FakeRunner* p_runner = nullptr;
  FakeRunner* d_runner = nullptr;
  auto prefill = startWorker(1, "prefill", &p_runner);
  auto decode = startWorker(2, "decode", &d_runner);
  ASSERT_TRUE(prefill && decode);
  EXPECT_EQ(prefill->record().transfer.backend, "tcp");
  EXPECT_NE(prefill->record().transfer.address.find("127.0.0.1:"), std::string::npos);
  EXPECT_EQ(decode->record().transfer.address, "");
  EXPECT_EQ(decode->record().role, "decode");

  std::vector<int32_t> prompt;
  for (int i = 0; i < 23; ++i) prompt.push_back(1 + (i * 7) % (kVocab - 1));  // 5 full blocks + 3
  auto leg = request("r", prompt, 9);
  leg.sampling.logprobs = 3;
  leg.disaggregation.prefill_only = true;
  Collector p;
  ASSERT_TRUE(prefill->generate(leg, p.callback()).isOk());
  ASSERT_TRUE(p.wait());
  EXPECT_EQ(p.tokens().size(), 1u);  // one token, whatever max_tokens asked
  EXPECT_EQ(p.last().finish, runtime::FinishReason::kLength);
  EXPECT_EQ(p.last().kv_address, prefill->record().transfer.address);
  EXPECT_TRUE(p.last().logprobs.empty());

  auto dec = request("r", prompt, 6);
  dec.disaggregation.kv_address = p.last().kv_address;
  dec.overlap_blocks = 1;  // the router expects block 0 here already: fetch 1..4 (it is not: computed)
  Collector d;
  ASSERT_TRUE(decode->generate(dec, d.callback()).isOk());
  ASSERT_TRUE(d.wait());
  EXPECT_EQ(d.tokens(), engine::testing::fakeGreedy(prompt, kVocab, 6));
  ASSERT_TRUE(d.last().usage.has_value());
  EXPECT_EQ(d.last().usage->cached_tokens, 0);  // the run fetched starts after a block not held

  dec.request_id = "r2";
  dec.overlap_blocks = 0;  // all five
  Collector d2;
  decode->engine().resetPrefixCache();
  decode->engine().sync();
  const int64_t before = d_runner->tokens_computed;
  ASSERT_TRUE(decode->generate(dec, d2.callback()).isOk());
  ASSERT_TRUE(d2.wait());
  EXPECT_EQ(d2.tokens(), engine::testing::fakeGreedy(prompt, kVocab, 6));
  EXPECT_EQ(d2.last().usage->cached_tokens, 20);
  decode->engine().sync();
  EXPECT_EQ(d_runner->tokens_computed - before, 3 + 5);
  const auto ts = decode->transferStats();
  EXPECT_EQ(ts.fetches, 2);
  EXPECT_EQ(ts.blocks_fetched, 4 + 5);
  EXPECT_EQ(ts.bytes_fetched, (4 + 5) * static_cast<int64_t>(d_runner->blockBytes()));
  EXPECT_EQ(ts.fetch_failures, 0);
  EXPECT_EQ(prefill->transferStats().blocks_served, 9);
}

TEST_F(DisaggWorkerTest, AFailedFetchIsComputedAndRolesRefuseTheOtherLeg) {
  FakeRunner* d_runner = nullptr;
  FakeRunner* a_runner = nullptr;
  auto decode = startWorker(2, "decode", &d_runner);
  auto agg = startWorker(3, "agg", &a_runner);
  ASSERT_TRUE(decode && agg);
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
  auto dec = request("x", prompt, 4);
  dec.disaggregation.kv_address = "127.0.0.1:1";  // nothing listens there
  Collector d;
  ASSERT_TRUE(decode->generate(dec, d.callback()).isOk());
  ASSERT_TRUE(d.wait());
  EXPECT_EQ(d.tokens(), engine::testing::fakeGreedy(prompt, kVocab, 4));
  EXPECT_EQ(d.last().usage->cached_tokens, 0);
  EXPECT_EQ(decode->transferStats().fetch_failures, 1);

  auto leg = request("y", prompt, 4);
  leg.disaggregation.prefill_only = true;
  EXPECT_EQ(decode->generate(leg, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(agg->generate(leg, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kFailedPrecondition);
  auto agg_dec = request("w", prompt, 4);  // the frontend sends decode legs to decode workers only
  agg_dec.disaggregation.kv_address = "127.0.0.1:1";
  EXPECT_EQ(agg->generate(agg_dec, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kFailedPrecondition);
  // A bad decode leg is refused before any fetch.
  auto bad = request("z", {kVocab + 3}, 2);
  bad.disaggregation.kv_address = "127.0.0.1:1";
  EXPECT_EQ(decode->generate(bad, [](runtime::GenerateChunk&&) {}).code(), StatusCode::kInvalidArgument);

  WorkerOptions wo;
  wo.worker_id = 9;
  wo.model_id = "fake";
  wo.role = "both";
  EXPECT_EQ(Worker::start(std::make_unique<FakeRunner>(kVocab, kBlock, 16, 64), {}, wo,
                          {&requests_, &discovery_, &events_})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_F(DisaggWorkerTest, AnAbortWhileFetchingEndsTheDecodeLeg) {
  // A peer that accepts and never answers: the fetch waits for its timeout.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  FakeRunner* d_runner = nullptr;
  auto decode = startWorker(2, "decode", &d_runner, 20s);
  ASSERT_TRUE(decode);
  auto dec = request("slow", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 4);
  dec.disaggregation.kv_address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  Collector d;
  ASSERT_TRUE(decode->generate(dec, d.callback()).isOk());
  EXPECT_EQ(decode->loadMetrics().waiting, 1);  // fetching counts as waiting
  std::this_thread::sleep_for(50ms);  // the fetch is under way
  decode->abort("slow");
  ASSERT_TRUE(d.wait(5s));  // at once, not after the fetch's 20 s
  EXPECT_EQ(d.last().finish, runtime::FinishReason::kAbort);
  EXPECT_TRUE(d.tokens().empty());
  EXPECT_EQ(decode->loadMetrics().waiting, 0);
  ::close(fd);  // resets the connection: the fetch fails, and its result is dropped
  // The same id may come again at once; the stale fetch does not touch it.
  Collector again;
  auto r2 = request("slow", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 4);
  ASSERT_TRUE(decode->generate(r2, again.callback()).isOk());
  ASSERT_TRUE(again.wait());
  EXPECT_EQ(again.tokens(), engine::testing::fakeGreedy(r2.token_ids, kVocab, 4));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(d.chunks.size(), 1u);
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
