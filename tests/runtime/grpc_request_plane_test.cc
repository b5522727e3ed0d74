// gRPC request plane on loopback against a fake worker: streaming, refusal, Abort, Health,
// deadline exceeded, client cancellation aborting on the worker, an unreachable worker.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/grpc_request_plane.h"
#include "turbine.grpc.pb.h"

namespace turbine::runtime {
namespace {

using namespace std::chrono_literals;

// Requests whose id starts with "hang" produce nothing until aborted; others stream
// max_tokens chunks of one token (prompt[0] + i) and finish kLength with usage.
class FakeWorker : public WorkerClient {
 public:
  Status generate(GenerateRequest request, ChunkCallback on_chunk) override {
    if (request.token_ids.empty()) return invalidArgument("empty prompt");
    std::lock_guard<std::mutex> lock(mu);
    last_request = request;
    if (request.request_id.rfind("hang", 0) == 0) {
      hanging[request.request_id] = std::move(on_chunk);
      return Status::ok();
    }
    threads.emplace_back([request = std::move(request), cb = std::move(on_chunk)]() mutable {
      const int n = request.stop.max_tokens.value_or(3);
      for (int i = 0; i < n; ++i) {
        GenerateChunk c;
        c.token_ids = {request.token_ids[0] + i};
        c.logprobs = {TokenLogprobs{c.token_ids[0], -0.5f * i, {{7, -0.25f}}}};
        if (i == 0 && request.sampling.prompt_logprobs >= 0) {  // the prompt's, echoed back
          c.prompt_logprobs.emplace();
          for (size_t k = 1; k < request.token_ids.size(); ++k) {
            c.prompt_logprobs->push_back(TokenLogprobs{request.token_ids[k], -1.0f * static_cast<float>(k),
                                                       {{8, -0.125f}}, static_cast<int32_t>(k) + 1});
          }
        }
        if (i + 1 == n) {
          c.finish = FinishReason::kLength;
          c.usage = Usage{static_cast<int32_t>(request.token_ids.size()), 16, n};
          if (request.disaggregation.prefill_only) c.kv_address = "kv@" + request.disaggregation.kv_address;
        }
        cb(std::move(c));
        std::this_thread::sleep_for(2ms);
      }
    });
    return Status::ok();
  }
  void abort(const std::string& id) override {
    ChunkCallback cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      aborted.push_back(id);
      auto it = hanging.find(id);
      if (it != hanging.end()) {
        cb = std::move(it->second);
        hanging.erase(it);
      }
      cv.notify_all();
    }
    if (cb) {
      GenerateChunk last;
      last.finish = FinishReason::kAbort;
      last.usage = Usage{4, 0, 0};
      cb(std::move(last));
    }
  }
  Status health() override { return healthy ? Status::ok() : unavailable("draining"); }

  bool waitAborted(const std::string& id, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return std::find(aborted.begin(), aborted.end(), id) != aborted.end(); });
  }
  ~FakeWorker() override {
    for (auto& t : threads) t.join();
  }

  std::mutex mu;
  std::condition_variable cv;
  GenerateRequest last_request;
  std::map<std::string, ChunkCallback> hanging;
  std::vector<std::string> aborted;
  std::vector<std::thread> threads;
  std::atomic<bool> healthy{true};
};

GenerateRequest req(std::string id, std::vector<int32_t> tokens) {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.token_ids = std::move(tokens);
  return r;
}

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<GenerateChunk> chunks;
  ChunkCallback callback() {
    return [this](GenerateChunk&& c) {
      std::lock_guard<std::mutex> lock(mu);
      chunks.push_back(std::move(c));
      cv.notify_all();
    };
  }
  bool waitFinal(std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return !chunks.empty() && chunks.back().finish != FinishReason::kNone; });
  }
};

class GrpcRequestPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override { startPlane({}); }
  void startPlane(GrpcRequestPlaneOptions options) {
    plane = std::make_unique<GrpcRequestPlane>(options);
    worker = std::make_shared<FakeWorker>();
    auto ep = plane->start("127.0.0.1:0", worker);
    ASSERT_TRUE(ep.isOk()) << ep.status().toString();
    endpoint = *ep;
    auto c = plane->connect(endpoint);
    ASSERT_TRUE(c.isOk());
    client = *c;
  }
  void TearDown() override {
    client.reset();
    plane.reset();  // servers first: the fake worker outlives its calls
  }

  std::unique_ptr<GrpcRequestPlane> plane;
  std::shared_ptr<FakeWorker> worker;
  std::shared_ptr<WorkerClient> client;
  std::string endpoint;
};

TEST_F(GrpcRequestPlaneTest, GenerateStreamsChunksAndCarriesEveryField) {
  EXPECT_NE(endpoint, "127.0.0.1:0");
  EXPECT_EQ(plane->start(endpoint, worker).status().code(), StatusCode::kAlreadyExists);
  GenerateRequest r;
  r.request_id = "r1";
  r.token_ids = {100, 5, 6, 7};
  r.sampling.temperature = 0.5f;
  r.sampling.seed = 42;
  r.sampling.logit_bias = {{3, -1.5f}};
  r.sampling.logprobs = 1;
  r.sampling.prompt_logprobs = 1;
  r.stop.max_tokens = 5;
  r.stop.stop_token_ids = {2, 9};
  r.cache_salt = "tenant";
  r.overlap_blocks = 3;
  r.constraint = structured::OutputConstraint{structured::OutputConstraint::Kind::kChoice, R"(["a","b"])", 2};
  r.disaggregation.prefill_only = true;
  r.disaggregation.kv_address = "127.0.0.1:9";
  Collector got;
  ASSERT_TRUE(client->generate(r, got.callback()).isOk());
  ASSERT_TRUE(got.waitFinal());
  std::lock_guard<std::mutex> lock(got.mu);
  ASSERT_EQ(got.chunks.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(got.chunks[i].token_ids, std::vector<int32_t>{100 + i});
    ASSERT_EQ(got.chunks[i].logprobs.size(), 1u);
    EXPECT_FLOAT_EQ(got.chunks[i].logprobs[0].logprob, -0.5f * i);
    EXPECT_EQ(got.chunks[i].logprobs[0].top, (std::vector<std::pair<int32_t, float>>{{7, -0.25f}}));
    EXPECT_EQ(got.chunks[i].finish, i == 4 ? FinishReason::kLength : FinishReason::kNone);
  }
  ASSERT_TRUE(got.chunks[4].usage.has_value());
  EXPECT_EQ(got.chunks[4].usage->prompt_tokens, 4);
  EXPECT_EQ(got.chunks[4].usage->cached_tokens, 16);
  EXPECT_EQ(got.chunks[4].usage->completion_tokens, 5);
  EXPECT_FALSE(got.chunks[0].usage.has_value());
  ASSERT_TRUE(got.chunks[0].prompt_logprobs.has_value());
  EXPECT_FALSE(got.chunks[1].prompt_logprobs.has_value());
  ASSERT_EQ(got.chunks[0].prompt_logprobs->size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    const TokenLogprobs& p = (*got.chunks[0].prompt_logprobs)[k];
    EXPECT_EQ(p.token_id, r.token_ids[k + 1]);
    EXPECT_FLOAT_EQ(p.logprob, -1.0f * static_cast<float>(k + 1));
    EXPECT_EQ(p.rank, static_cast<int32_t>(k) + 2);
    EXPECT_EQ(p.top, (std::vector<std::pair<int32_t, float>>{{8, -0.125f}}));
  }
  EXPECT_EQ(got.chunks[4].kv_address, "kv@127.0.0.1:9");
  EXPECT_EQ(got.chunks[0].kv_address, "");
  std::lock_guard<std::mutex> wl(worker->mu);
  const GenerateRequest& seen = worker->last_request;
  EXPECT_EQ(seen.token_ids, r.token_ids);
  EXPECT_EQ(seen.sampling.seed, std::optional<uint64_t>(42));
  EXPECT_FLOAT_EQ(seen.sampling.temperature, 0.5f);
  EXPECT_EQ(seen.sampling.logit_bias, r.sampling.logit_bias);
  EXPECT_EQ(seen.sampling.prompt_logprobs, 1);
  EXPECT_EQ(seen.stop.max_tokens, std::optional<int32_t>(5));
  EXPECT_EQ(seen.stop.stop_token_ids, r.stop.stop_token_ids);
  EXPECT_EQ(seen.cache_salt, "tenant");
  EXPECT_EQ(seen.overlap_blocks, 3);
  EXPECT_EQ(seen.constraint, r.constraint);
  EXPECT_EQ(seen.disaggregation, r.disaggregation);
}

TEST_F(GrpcRequestPlaneTest, RefusalIsReturnedAtOnceWithoutChunks) {
  Collector got;
  GenerateRequest r;
  r.request_id = "empty";
  Status s = client->generate(r, got.callback());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("empty prompt"), std::string::npos);
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> lock(got.mu);
  EXPECT_TRUE(got.chunks.empty());
}

TEST_F(GrpcRequestPlaneTest, AbortReachesTheWorkerAndTheStreamEnds) {
  Collector got;
  GenerateRequest r = req("hang-1", {1, 2, 3, 4});
  ASSERT_TRUE(client->generate(r, got.callback()).isOk());
  client->abort("hang-1");
  ASSERT_TRUE(worker->waitAborted("hang-1"));
  ASSERT_TRUE(got.waitFinal());
  std::lock_guard<std::mutex> lock(got.mu);
  ASSERT_EQ(got.chunks.size(), 1u);
  EXPECT_EQ(got.chunks[0].finish, FinishReason::kAbort);
  ASSERT_TRUE(got.chunks[0].usage.has_value());  // the worker's own final chunk came back
  EXPECT_EQ(got.chunks[0].usage->prompt_tokens, 4);
  client->abort("never-heard-of");  // no-op
}

TEST_F(GrpcRequestPlaneTest, HealthFollowsTheWorkerAndStopServing) {
  EXPECT_TRUE(client->health().isOk());
  worker->healthy = false;
  Status s = client->health();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("draining"), std::string::npos);
  worker->healthy = true;
  plane->stopServing(endpoint);
  EXPECT_EQ(client->health().code(), StatusCode::kUnavailable);
  Collector got;
  EXPECT_EQ(client->generate(req("late", {1}), got.callback()).code(), StatusCode::kUnavailable);
}

TEST_F(GrpcRequestPlaneTest, DeadlineExceededEndsTheStreamAndAbortsOnTheWorker) {
  client.reset();
  plane.reset();
  GrpcRequestPlaneOptions o;
  o.generate_deadline_ms = 300;
  startPlane(o);
  Collector got;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(client->generate(req("hang-deadline", {1, 2}), got.callback()).isOk());
  ASSERT_TRUE(got.waitFinal());
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3000ms);
  {
    std::lock_guard<std::mutex> lock(got.mu);
    ASSERT_EQ(got.chunks.size(), 1u);
    EXPECT_EQ(got.chunks[0].finish, FinishReason::kError);
    EXPECT_EQ(got.chunks[0].error.code(), StatusCode::kDeadlineExceeded) << got.chunks[0].error.toString();
  }
  EXPECT_TRUE(worker->waitAborted("hang-deadline"));
  // A quick request under the same deadline still completes.
  Collector ok;
  ASSERT_TRUE(client->generate(req("quick", {9}), ok.callback()).isOk());
  ASSERT_TRUE(ok.waitFinal());
  std::lock_guard<std::mutex> lock(ok.mu);
  EXPECT_EQ(ok.chunks.back().finish, FinishReason::kLength);
}

TEST_F(GrpcRequestPlaneTest, CancellingTheClientCallAbortsOnTheWorker) {
  // A raw gRPC client, to cancel the call itself (not through Abort).
  auto stub = rpc::Worker::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  rpc::GenerateRequest req;
  req.set_request_id("hang-cancel");
  req.add_token_ids(5);
  auto reader = stub->Generate(&ctx, req);
  reader->WaitForInitialMetadata();
  EXPECT_EQ(ctx.GetServerInitialMetadata().count("turbine-admitted"), 1u);
  {
    std::lock_guard<std::mutex> lock(worker->mu);
    EXPECT_TRUE(worker->aborted.empty());
  }
  ctx.TryCancel();
  EXPECT_TRUE(worker->waitAborted("hang-cancel"));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
}

TEST(GrpcRequestPlane, UnreachableWorkerIsUnavailable) {
  // Find a free port, then leave nothing listening on it.
  GrpcRequestPlaneOptions o;
  o.admission_timeout_ms = 5000;
  o.unary_deadline_ms = 1000;
  GrpcRequestPlane plane(o);
  auto ep = plane.start("127.0.0.1:0", std::make_shared<FakeWorker>());
  ASSERT_TRUE(ep.isOk());
  plane.stopServing(*ep);
  auto client = plane.connect(*ep);
  ASSERT_TRUE(client.isOk());
  Collector got;
  Status s = (*client)->generate(req("x", {1}), got.callback());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  EXPECT_EQ((*client)->health().code(), StatusCode::kUnavailable);
  EXPECT_EQ(plane.connect("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(plane.start("nonsense", std::make_shared<FakeWorker>()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace turbine::runtime
