// Engine (threaded step loop) tests: with FakeRunner (see fake_runner.h) for the mechanics, and
// with the real tiny Llama model (makeModel -> loadModel -> LlamaModel) for issue 3 §4.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "engine/fake_runner.h"
#include "engine/llama_model.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

using testing::FakeRunner;
using testing::fakeGreedy;
using testing::greedyRequest;
using testing::randomPrompt;

constexpr int32_t kVocab = 97;


struct Collected {
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::kNone;
  Usage usage;
  Status status;
};

// Drains a stream into one sample's tokens (n = 1).
Collected drain(OutputStream& s) {
  Collected c;
  while (auto o = s.next()) {
    c.tokens.insert(c.tokens.end(), o->token_ids.begin(), o->token_ids.end());
    if (o->finished()) {
      c.reason = o->finish_reason;
      if (o->usage) c.usage = *o->usage;
      c.status = o->status;
    }
  }
  return c;
}

std::unique_ptr<Engine> makeEngine(std::unique_ptr<ModelRunner> runner, EngineOptions o = {}) {
  if (o.model_id.empty()) o.model_id = "fake";
  auto e = Engine::create(std::move(runner), o);
  EXPECT_TRUE(e.isOk()) << e.status().toString();
  return std::move(e).value();
}

// A gate the fake runner waits on inside forward(), to hold the step loop still.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  int entered = 0;
  void wait() {
    std::unique_lock lk(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lk, [&] { return open; });
  }
  void set(bool o) {
    std::lock_guard lk(mu);
    open = o;
    cv.notify_all();
  }
  void waitEntered(int n) {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return entered >= n; });
  }
};

TEST(Engine, StreamsGreedyTokensWithUsage) {
  auto e = makeEngine(std::make_unique<FakeRunner>(kVocab, 4, 256, 512));
  std::mt19937 rng(1);
  const auto prompt = randomPrompt(rng, 30, kVocab);
  auto s = e->addStream(greedyRequest("a", prompt, 9));
  ASSERT_TRUE(s.isOk());
  const Collected c = drain(**s);
  EXPECT_EQ(c.tokens, fakeGreedy(prompt, kVocab, 9));
  EXPECT_EQ(c.reason, FinishReason::kLength);
  EXPECT_EQ(c.usage.prompt_tokens, 30);
  EXPECT_EQ(c.usage.completion_tokens, 9);
  auto again = e->addStream(greedyRequest("b", prompt, 9));
  ASSERT_TRUE(again.isOk());
  const Collected c2 = drain(**again);
  EXPECT_EQ(c2.tokens, c.tokens);
  EXPECT_EQ(c2.usage.cached_tokens, 28);
  e->sync();  // stats are published after the step that delivered the last chunk
  const EngineStats st = e->stats();
  EXPECT_NEAR(st.prefix_cache_hit_rate, 28.0 / 60.0, 1e-9);
  EXPECT_EQ(st.decode_tokens, 16);  // 8 decodes each (the first token comes from the prefill)
  EXPECT_GT(st.steps, 0);
  EXPECT_EQ(st.finished_requests, 2);
}

TEST(Engine, RejectsBadRequestsAtOnce) {
  auto e = makeEngine(std::make_unique<FakeRunner>(kVocab, 4, 256, 100));
  Status st = e->add(greedyRequest("long", std::vector<int32_t>(90, 1), 20), nullptr);
  ASSERT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("90"), std::string::npos);
  EXPECT_NE(st.message().find("100"), std::string::npos);
  EXPECT_EQ(e->add(greedyRequest("v", {1, kVocab + 5}, 2), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Engine::create(nullptr, {}).isOk());
  EngineOptions bad;
  bad.max_num_seqs = 0;
  EXPECT_FALSE(Engine::create(std::make_unique<FakeRunner>(kVocab, 4, 8, 64), bad).isOk());
}

TEST(Engine, BoundedWaitingQueueReturnsResourceExhausted) {
  auto runner = std::make_unique<FakeRunner>(kVocab, 4, 256, 512);
  auto gate = std::make_shared<Gate>();
  runner->on_forward = [gate](const Batch&) { gate->wait(); };
  EngineOptions o;
  o.max_waiting = 3;
  gate->set(false);
  auto e = makeEngine(std::move(runner), o);
  std::vector<std::shared_ptr<OutputStream>> streams;
  auto s0 = e->addStream(greedyRequest("r0", {1, 2, 3}, 4));
  ASSERT_TRUE(s0.isOk());
  streams.push_back(*s0);
  gate->waitEntered(1);  // r0 is running; the loop is held inside forward()
  for (int i = 1; i <= 3; ++i) {
    auto s = e->addStream(greedyRequest("r" + std::to_string(i), {1, 2, 3, i}, 4));
    ASSERT_TRUE(s.isOk()) << i;
    streams.push_back(*s);
  }
  auto over = e->addStream(greedyRequest("r4", {4}, 4));
  ASSERT_FALSE(over.isOk());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(e->stats().waiting, 3);
  gate->set(true);
  for (auto& s : streams) EXPECT_EQ(drain(*s).reason, FinishReason::kLength);
  // Room again.
  auto later = e->addStream(greedyRequest("r5", {4}, 2));
  ASSERT_TRUE(later.isOk());
  EXPECT_EQ(drain(**later).tokens.size(), 2u);
}

TEST(Engine, AbortFreesBlocksAndEndsTheStream) {
  auto runner = std::make_unique<FakeRunner>(kVocab, 4, 256, 4096);
  runner->on_forward = [](const Batch&) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  };
  auto e = makeEngine(std::move(runner));
  auto s = e->addStream(greedyRequest("long", {5, 6, 7}, 3000));
  ASSERT_TRUE(s.isOk());
  // Wait for a few tokens, so that at least one full block (3 prompt + 4 generated tokens, block
  // size 4) has been computed and hashed before the abort.
  for (int i = 0; i < 5; ++i) {
    auto chunk = (*s)->next();
    ASSERT_TRUE(chunk.has_value());
  }
  e->abort("long");
  e->abort("unknown");  // ignored
  const Collected c = drain(**s);
  EXPECT_EQ(c.reason, FinishReason::kAbort);
  EXPECT_LT(c.usage.completion_tokens, 3000);
  e->sync();
  const EngineStats st = e->stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running, 0);
  EXPECT_GT(st.kv_blocks_cached_free, 0);
}

TEST(Engine, DuplicateIdIsReportedThroughTheStream) {
  auto runner = std::make_unique<FakeRunner>(kVocab, 4, 256, 512);
  auto gate = std::make_shared<Gate>();
  runner->on_forward = [gate](const Batch&) { gate->wait(); };
  gate->set(false);
  auto e = makeEngine(std::move(runner));
  auto a = e->addStream(greedyRequest("same", {1, 2}, 2));
  ASSERT_TRUE(a.isOk());
  gate->waitEntered(1);
  auto b = e->addStream(greedyRequest("same", {1, 2}, 2));
  ASSERT_TRUE(b.isOk());
  gate->set(true);
  const Collected cb = drain(**b);
  EXPECT_EQ(cb.reason, FinishReason::kAbort);
  EXPECT_EQ(cb.status.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(drain(**a).tokens.size(), 2u);
}

TEST(Engine, ConcurrentClientsGetTheirOwnTokens) {
  auto e = makeEngine(std::make_unique<FakeRunner>(kVocab, 4, 512, 512),
                      EngineOptions{"fake", 0, 64, 16, 1024, true, {}, {}, {}});
  std::vector<std::thread> clients;
  std::atomic<int> mismatches{0}, done{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 25; ++i) {
        const auto prompt = randomPrompt(rng, 1 + static_cast<int32_t>(rng() % 60), kVocab);
        const int32_t n = 1 + static_cast<int32_t>(rng() % 10);
        auto s = e->addStream(greedyRequest("c" + std::to_string(t) + "_" + std::to_string(i), prompt, n));
        if (!s.isOk()) {
          ++mismatches;
          continue;
        }
        if (drain(**s).tokens != fakeGreedy(prompt, kVocab, n)) ++mismatches;
        ++done;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(done.load(), 100);
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Engine, KvEventsMirrorTheCacheAndSeqIsConsecutive) {
  auto e = makeEngine(std::make_unique<FakeRunner>(kVocab, 4, 48, 512),
                      EngineOptions{"fake", 7, 32, 8, 1024, true, {}, {}, {}});
  std::mutex mu;
  kv::KvBlockSet mirror;
  int bad = 0;
  e->subscribeKvEvents([&](const kv::KvEventMessage& m) {
    std::lock_guard lk(mu);
    if (m.worker_id != 7 || !mirror.apply(m).isOk()) ++bad;
  });
  std::mt19937 rng(5);
  const auto stem = randomPrompt(rng, 20, kVocab);
  std::vector<std::shared_ptr<OutputStream>> streams;
  for (int i = 0; i < 60; ++i) {
    auto p = stem;
    p.resize(rng() % 20);
    const auto tail = randomPrompt(rng, 1 + static_cast<int32_t>(rng() % 20), kVocab);
    p.insert(p.end(), tail.begin(), tail.end());
    auto s = e->addStream(greedyRequest("k" + std::to_string(i), p, 1 + static_cast<int32_t>(rng() % 6)));
    ASSERT_TRUE(s.isOk());
    streams.push_back(*s);
  }
  for (auto& s : streams) drain(*s);
  e->sync();
  const EngineStats st = e->stats();
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(bad, 0);
    EXPECT_EQ(st.kv_blocks_used, 0);
    // Idle: every cached block is cached-free, and the mirror holds exactly that many hashes.
    EXPECT_EQ(static_cast<size_t>(st.kv_blocks_cached_free), mirror.size());
    EXPECT_GT(mirror.size(), 0u);
  }
  e->resetPrefixCache();
  e->sync();
  std::lock_guard lk(mu);
  EXPECT_EQ(mirror.size(), 0u);
  EXPECT_EQ(e->stats().kv_blocks_cached_free, 0);
}

TEST(Engine, ShutdownAbortEndsEveryStreamAndDrainFinishesThem) {
  for (auto mode : {Engine::ShutdownMode::kAbort, Engine::ShutdownMode::kDrain}) {
    auto runner = std::make_unique<FakeRunner>(kVocab, 4, 256, 512);
    runner->on_forward = [](const Batch&) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    };
    auto e = makeEngine(std::move(runner));
    std::vector<std::shared_ptr<OutputStream>> streams;
    for (int i = 0; i < 10; ++i) {
      auto s = e->addStream(greedyRequest("s" + std::to_string(i), {1, 2, 3, i}, 50));
      ASSERT_TRUE(s.isOk());
      streams.push_back(*s);
    }
    e->shutdown(mode);
    for (auto& s : streams) {
      const Collected c = drain(*s);
      if (mode == Engine::ShutdownMode::kDrain) {
        EXPECT_EQ(c.reason, FinishReason::kLength);
        EXPECT_EQ(c.tokens.size(), 50u);
      } else {
        EXPECT_NE(c.reason, FinishReason::kNone);
      }
    }
    EXPECT_EQ(e->add(greedyRequest("late", {1}, 1), nullptr).code(), StatusCode::kUnavailable);
    e.reset();
  }
}

// ---- The real tiny Llama model -------------------------------------------------------------

class TinyModelEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::string(TURBINE_BINARY_DIR) + "/tmp/engine_test_tiny_" +
                           std::to_string(::getpid()));
    model::MakeModelOptions o;
    o.preset = "tiny";
    o.format = "hf";
    o.dtype = "f32";
    o.seed = 3;
    o.out = *dir_;
    o.tokenizer_corpus_bytes = 256 << 10;
    Status st = model::makeModel(o);
    if (!st.isOk()) {
      error_ = new std::string(st.toString());
      return;
    }
    auto w = model::loadModel(*dir_);
    if (!w.isOk()) {
      error_ = new std::string(w.status().toString());
      return;
    }
    weights_ = new std::shared_ptr<const model::ModelWeights>(
        std::make_shared<model::ModelWeights>(std::move(w).value()));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (dir_) std::filesystem::remove_all(*dir_, ec);
    delete weights_;
    delete dir_;
    delete error_;
    weights_ = nullptr;
    dir_ = error_ = nullptr;
  }
  void SetUp() override { ASSERT_EQ(error_, nullptr) << *error_; }

  std::unique_ptr<Engine> engine(int32_t num_blocks, int32_t budget, bool caching = true) {
    LlamaModelOptions lo;
    lo.threads = 2;
    lo.block_size = 16;
    lo.num_blocks = num_blocks;
    lo.max_model_len = 512;
    auto m = LlamaModel::create(*weights_, lo);
    EXPECT_TRUE(m.isOk()) << m.status().toString();
    EngineOptions eo;
    eo.model_id = "tiny";
    eo.max_num_batched_tokens = budget;
    eo.enable_prefix_caching = caching;
    return makeEngine(std::move(m).value(), eo);
  }

  int32_t vocab() const { return (*weights_)->config.vocab_size; }

  static std::vector<int32_t> alone(Engine& e, const Request& r) {
    auto s = e.addStream(r);
    EXPECT_TRUE(s.isOk());
    return drain(**s).tokens;
  }

  static std::string* dir_;
  static std::string* error_;
  static std::shared_ptr<const model::ModelWeights>* weights_;
};
std::string* TinyModelEngine::dir_ = nullptr;
std::string* TinyModelEngine::error_ = nullptr;
std::shared_ptr<const model::ModelWeights>* TinyModelEngine::weights_ = nullptr;

TEST_F(TinyModelEngine, BatchInvarianceOf32MixedRequestsWithChunkedPrefill) {
  std::mt19937 rng(11);
  std::vector<Request> reqs;
  for (int i = 0; i < 32; ++i) {
    reqs.push_back(greedyRequest("b" + std::to_string(i),
                          randomPrompt(rng, 2 + static_cast<int32_t>(rng() % 90), vocab()),
                          4 + static_cast<int32_t>(rng() % 6)));
  }
  auto solo = engine(256, 64, /*caching=*/false);
  std::vector<std::vector<int32_t>> expected;
  std::set<std::vector<int32_t>> distinct;
  for (const auto& r : reqs) {
    expected.push_back(alone(*solo, r));
    ASSERT_EQ(static_cast<int32_t>(expected.back().size()), *r.stop.max_tokens);
    distinct.insert(expected.back());
  }
  EXPECT_GT(distinct.size(), 16u);  // the model really depends on its prompt
  auto e = engine(256, 64, /*caching=*/false);
  std::vector<std::shared_ptr<OutputStream>> streams;
  for (const auto& r : reqs) streams.push_back(*e->addStream(r));
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(drain(*streams[i]).tokens, expected[i]) << reqs[i].request_id;
  }
}

TEST_F(TinyModelEngine, PrefixCacheHitGivesColdTokens) {
  std::mt19937 rng(12);
  const auto prompt = randomPrompt(rng, 70, vocab());
  auto cold = engine(64, 2048, /*caching=*/false);
  const auto expected = alone(*cold, greedyRequest("c", prompt, 12));
  auto e = engine(64, 2048);
  auto first = e->addStream(greedyRequest("w1", prompt, 12));
  const Collected c1 = drain(**first);
  auto second = e->addStream(greedyRequest("w2", prompt, 12));
  const Collected c2 = drain(**second);
  EXPECT_EQ(c1.tokens, expected);
  EXPECT_EQ(c2.tokens, expected);
  EXPECT_EQ(c1.usage.cached_tokens, 0);
  EXPECT_EQ(c2.usage.cached_tokens, 64);  // 4 full blocks of 16
}

TEST_F(TinyModelEngine, PreemptionUnderTinyPoolKeepsAloneTokens) {
  std::mt19937 rng(13);
  std::vector<Request> reqs;
  for (int i = 0; i < 6; ++i) {
    reqs.push_back(greedyRequest("p" + std::to_string(i),
                          randomPrompt(rng, 10 + static_cast<int32_t>(rng() % 30), vocab()), 24));
  }
  auto solo = engine(64, 2048, false);
  std::vector<std::vector<int32_t>> expected;
  for (const auto& r : reqs) expected.push_back(alone(*solo, r));
  auto e = engine(8, 64);  // 128 token slots for ~6 x 50 tokens
  std::vector<std::shared_ptr<OutputStream>> streams;
  for (const auto& r : reqs) streams.push_back(*e->addStream(r));
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(drain(*streams[i]).tokens, expected[i]) << reqs[i].request_id;
  }
  e->sync();
  const EngineStats st = e->stats();
  EXPECT_GT(st.preemptions, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

}  // namespace
}  // namespace turbine::engine
