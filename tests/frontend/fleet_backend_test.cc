// FleetBackend over the in-process planes with scripted workers: models appear with their first
// worker and leave with their last, each model routes only to its own workers, a model whose
// assets cannot be loaded is logged once and not served, a worker that refuses as Unavailable
// is dropped and the request routed to another, and a request whose worker dies mid-stream
// migrates to another worker.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend_fakes.h"
#include "frontend/fleet_backend.h"
#include "runtime/in_process_discovery.h"
#include "runtime/in_process_event_plane.h"
#include "runtime/in_process_request_plane.h"

namespace turbine::frontend {
namespace {

runtime::WorkerRecord record(kv::WorkerId id, const std::string& name, const std::string& model_id,
                             const std::string& path = "/models/x") {
  runtime::WorkerRecord r;
  r.worker_id = id;
  r.endpoint = "w" + std::to_string(id);
  r.model_id = model_id;
  r.served_model_name = name;
  r.model_path = path;
  r.block_size = 4;
  r.kv_blocks_total = 50;
  r.max_model_len = 256;
  return r;
}

class FleetBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FleetBackendOptions o;
    o.router.policy = "round-robin";
    o.load_assets = [this](const std::string& path) -> Result<ServingAssets> {
      loads_.push_back(path);
      if (path == "/models/broken") return invalidArgument(path + "/tokenizer.json: not found");
      ServingAssets a;
      a.info.model_id = "from-" + path;
      a.tokenizer = tinyTokenizer();
      return a;
    };
    o.log = [this](const std::string& line) { log_.push_back(line); };
    o.on_worker = [this](const runtime::DiscoveryEvent& e) { seen_.push_back(e.record.worker_id); };
    auto b = FleetBackend::create(std::move(o), {&requests_, &discovery_, &events_});
    ASSERT_TRUE(b.isOk()) << b.status().toString();
    backend_ = *b;
  }
  void TearDown() override {
    backend_.reset();
    events_.close();
  }

  std::shared_ptr<ScriptedWorker> addWorker(const runtime::WorkerRecord& r) {
    auto w = std::make_shared<ScriptedWorker>();
    EXPECT_TRUE(requests_.serve(r.endpoint, w).isOk());
    EXPECT_TRUE(discovery_.registerWorker(r).isOk());
    return w;
  }

  std::vector<std::string> modelIds() {
    std::vector<std::string> ids;
    for (const auto& c : backend_->models()) ids.push_back(c.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  GenerateRequest request(const std::string& id, const std::string& model) {
    GenerateRequest r;
    r.request_id = id;
    r.model = model;
    r.prompt_token_ids = {5, 6, 7, 8, 9, 10, 11, 12, 13};
    r.stop.max_tokens = 2;
    return r;
  }

  runtime::InProcessRequestPlane requests_;
  runtime::InProcessDiscovery discovery_;
  runtime::InProcessEventPlane events_;
  std::shared_ptr<FleetBackend> backend_;
  std::vector<std::string> loads_;
  std::vector<std::string> log_;
  std::vector<kv::WorkerId> seen_;
};

TEST_F(FleetBackendTest, ModelsAppearWithTheirFirstWorkerAndLeaveWithTheLast) {
  EXPECT_TRUE(modelIds().empty());
  EXPECT_EQ(backend_->health().code(), StatusCode::kUnavailable);
  addWorker(record(1, "alpha", "alpha-id", "/models/a"));
  EXPECT_EQ(modelIds(), std::vector<std::string>{"alpha"});
  addWorker(record(2, "alpha", "alpha-id", "/models/a"));
  addWorker(record(3, "beta", "beta-id", "/models/b"));
  EXPECT_EQ(modelIds(), (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_EQ(backend_->numWorkers("alpha"), 2u);
  EXPECT_EQ(loads_, (std::vector<std::string>{"/models/a", "/models/b"}));  // once per model
  EXPECT_EQ(seen_, (std::vector<kv::WorkerId>{1, 2, 3}));
  EXPECT_TRUE(backend_->health().isOk());

  discovery_.deregisterWorker(1);
  discovery_.deregisterWorker(2);
  EXPECT_EQ(modelIds(), std::vector<std::string>{"beta"});
  EXPECT_EQ(backend_->generate(request("r1", "alpha"), [](GenerationChunk) {}).code(), StatusCode::kNotFound);
  EXPECT_EQ(backend_->tokenize("alpha", "hi", false).status().code(), StatusCode::kNotFound);
  // A worker of the model coming back serves it again, without loading its assets twice.
  addWorker(record(4, "alpha", "alpha-id", "/models/a"));
  EXPECT_EQ(modelIds(), (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_EQ(loads_.size(), 2u);
}

TEST_F(FleetBackendTest, EachModelRoutesOnlyToItsOwnWorkers) {
  auto a = addWorker(record(1, "alpha", "alpha-id"));
  auto b = addWorker(record(2, "beta", "beta-id"));
  std::vector<GenerationChunk> got;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(backend_->generate(request("b" + std::to_string(i), "beta"),
                                   [&](GenerationChunk c) { got.push_back(std::move(c)); }).isOk());
  }
  EXPECT_TRUE(a->received.empty());
  ASSERT_EQ(b->received.size(), 3u);
  EXPECT_EQ(b->received[0].token_ids, (std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11, 12, 13}));
  backend_->abort("b1");
  EXPECT_EQ(b->aborted, std::vector<std::string>{"b1"});
  runtime::GenerateChunk fin;
  fin.finish = runtime::FinishReason::kLength;
  fin.token_ids = {3};
  b->send("b0", std::move(fin));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].finish, FinishReason::kLength);
  backend_->abort("b0");  // finished: no longer forwarded
  EXPECT_EQ(b->aborted.size(), 1u);
  // A request id that is still running cannot start twice.
  EXPECT_EQ(backend_->generate(request("b2", "beta"), [](GenerationChunk) {}).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(FleetBackendTest, AModelWhoseAssetsDoNotLoadIsLoggedOnceAndNotServed) {
  addWorker(record(1, "gamma", "gamma-id", "/models/broken"));
  addWorker(record(2, "gamma", "gamma-id", "/models/broken"));
  addWorker(record(3, "delta", "delta-id", ""));  // no path registered, none given
  EXPECT_TRUE(modelIds().empty());
  ASSERT_EQ(log_.size(), 2u);
  EXPECT_NE(log_[0].find("/models/broken/tokenizer.json: not found"), std::string::npos) << log_[0];
  EXPECT_NE(log_[1].find("no model_path"), std::string::npos) << log_[1];
}

TEST_F(FleetBackendTest, AWorkerThatRefusesAsUnavailableIsDroppedAndTheRequestRerouted) {
  auto dead = addWorker(record(1, "alpha", "alpha-id"));
  auto live = addWorker(record(2, "alpha", "alpha-id"));
  dead->refuse = unavailable("connection refused");
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(backend_->generate(request("r" + std::to_string(i), "alpha"), [](GenerationChunk) {}).isOk());
  }
  EXPECT_EQ(live->received.size(), 4u);
  EXPECT_EQ(backend_->numWorkers("alpha"), 1u);
  // Other refusals are the answer, not a reason to drop the worker.
  live->refuse = resourceExhausted("queue full");
  EXPECT_EQ(backend_->generate(request("r9", "alpha"), [](GenerationChunk) {}).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(backend_->numWorkers("alpha"), 1u);
  // With every worker gone, Unavailable reaches the caller.
  live->refuse = unavailable("gone too");
  EXPECT_EQ(backend_->generate(request("r10", "alpha"), [](GenerationChunk) {}).code(), StatusCode::kUnavailable);
}

TEST_F(FleetBackendTest, ARequestWhoseWorkerDiesMidStreamMigratesToAnother) {
  auto first = addWorker(record(1, "alpha", "alpha-id"));
  auto second = addWorker(record(2, "alpha", "alpha-id"));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<GenerationChunk> got;
  auto sink = [&](GenerationChunk c) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(c));
    cv.notify_all();
  };
  GenerateRequest r = request("m1", "alpha");
  r.stop.max_tokens = 5;
  r.stop.min_tokens = 3;
  r.constraint = structured::OutputConstraint{structured::OutputConstraint::Kind::kRegex, "x*"};
  r.sampling.prompt_logprobs = 0;
  ASSERT_TRUE(backend_->generate(r, sink).isOk());
  auto& a = first->received.empty() ? *second : *first;  // round-robin picked one of them
  EXPECT_EQ(a.received[0].sampling.prompt_logprobs, 0);
  auto& b = first->received.empty() ? *first : *second;
  runtime::GenerateChunk c1;
  c1.token_ids = {40, 41};
  a.send("m1", std::move(c1));
  runtime::GenerateChunk dead;
  dead.finish = runtime::FinishReason::kError;
  dead.error = unavailable("worker connection lost");
  dead.token_ids = {42};
  a.send("m1", std::move(dead));
  // The continuation reaches the other worker: the streamed tokens are now prompt.
  auto arrived = [&] {
    std::lock_guard<std::mutex> lock(b.mu);
    return !b.received.empty();
  };
  for (int i = 0; i < 500 && !arrived(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_TRUE(arrived());
  EXPECT_EQ(b.received[0].token_ids, (std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11, 12, 13, 40, 41, 42}));
  EXPECT_EQ(b.received[0].stop.max_tokens, 2);
  EXPECT_EQ(b.received[0].stop.min_tokens, 0);
  ASSERT_TRUE(b.received[0].constraint);  // the new worker continues the constrained output
  EXPECT_EQ(b.received[0].constraint->resume_tokens, 3);
  EXPECT_EQ(b.received[0].constraint->spec, "x*");
  EXPECT_EQ(b.received[0].sampling.prompt_logprobs, -1);  // they came with the first tokens
  EXPECT_EQ(backend_->numWorkers("alpha"), 1u);
  runtime::GenerateChunk fin;
  fin.token_ids = {43, 44};
  fin.finish = runtime::FinishReason::kLength;
  fin.usage = runtime::Usage{};
  fin.usage->cached_tokens = 12;  // more than the client's prompt: capped to it
  b.send("m1", std::move(fin));
  std::lock_guard<std::mutex> lock(mu);
  std::vector<int32_t> tokens;
  for (const auto& c : got) tokens.insert(tokens.end(), c.token_ids.begin(), c.token_ids.end());
  EXPECT_EQ(tokens, (std::vector<int32_t>{40, 41, 42, 43, 44}));
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back().finish, FinishReason::kLength);
  EXPECT_EQ(got.back().cached_tokens, 9);
  for (size_t i = 0; i + 1 < got.size(); ++i) EXPECT_EQ(got[i].finish, FinishReason::kNone);
  EXPECT_NE(backend_->stats().extra_metrics.find("turbine_request_migrations_total{model=\"alpha\"} 1\n"),
            std::string::npos);
}

TEST_F(FleetBackendTest, WithNoWorkerLeftAMigratingRequestEndsWithTheError) {
  auto only = addWorker(record(1, "alpha", "alpha-id"));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<GenerationChunk> got;
  ASSERT_TRUE(backend_->generate(request("m2", "alpha"), [&](GenerationChunk c) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(c));
    cv.notify_all();
  }).isOk());
  runtime::GenerateChunk dead;
  dead.finish = runtime::FinishReason::kError;
  dead.error = unavailable("worker connection lost");
  only->send("m2", std::move(dead));
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return !got.empty(); }));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].finish, FinishReason::kError);
  EXPECT_EQ(got[0].error.code(), StatusCode::kUnavailable);
  EXPECT_NE(got[0].error.message().find("worker connection lost"), std::string::npos) << got[0].error.message();
}

TEST_F(FleetBackendTest, StatsCarryRouterMetricsPerModel) {
  addWorker(record(1, "alpha", "alpha-id"));
  const std::string text = backend_->stats().extra_metrics;
  EXPECT_NE(text.find("turbine_fleet_workers{model=\"alpha\"} 1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace turbine::frontend
