// FleetBackend over the in-process planes with scripted workers: models appear with their first
// worker and leave with their last, each model routes only to its own workers, a model whose
// assets cannot be loaded is logged once and not served, and a worker that refuses as Unavailable
// is dropped and the request routed to another.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
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

TEST_F(FleetBackendTest, StatsCarryRouterMetricsPerModel) {
  addWorker(record(1, "alpha", "alpha-id"));
  const std::string text = backend_->stats().extra_metrics;
  EXPECT_NE(text.find("turbine_fleet_workers{model=\"alpha\"} 1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace turbine::frontend
