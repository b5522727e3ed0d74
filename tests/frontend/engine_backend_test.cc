// EngineBackend over the in-process planes with scripted workers (no engine): routing with the
// prompt's block hashes, request and chunk translation, abort forwarding, discovery changes,
// suspension of workers that refuse as Unavailable,
// stats from load reports, chat templates and detokenization with a real (tiny) tokenizer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "backend_fakes.h"
#include "frontend/engine_backend.h"
#include "runtime/in_process_discovery.h"
#include "runtime/in_process_event_plane.h"
#include "runtime/in_process_request_plane.h"

namespace turbine::frontend {
namespace {

// Round-robin underneath; remembers what it was asked.
class RecordingRouter : public router::Router {
 public:
  RecordingRouter() : inner_(std::move(router::makeRouter(router::RouterOptions{"round-robin"})).value()) {}
  void addWorker(const router::WorkerInfo& w) override { inner_->addWorker(w); }
  void removeWorker(router::WorkerId w) override { inner_->removeWorker(w); }
  void onKvEvents(const kv::KvEventMessage& m) override {
    std::lock_guard<std::mutex> lock(mu);
    kv_messages.push_back(m);
  }
  void onLoad(const kv::LoadMetrics& l) override { inner_->onLoad(l); }
  Result<router::RouteDecision> route(const router::RouteRequest& r) override {
    std::lock_guard<std::mutex> lock(mu);
    hashes.assign(r.block_hashes.begin(), r.block_hashes.end());
    model_id = r.model_id;
    auto d = inner_->route(r);
    if (d.isOk()) d->overlap_blocks = 1;
    return d;
  }
  void onRequestFinished(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu);
    finished.push_back(id);
  }

  std::mutex mu;
  std::vector<kv::BlockHash> hashes;
  std::string model_id;
  std::vector<std::string> finished;
  std::vector<kv::KvEventMessage> kv_messages;

 private:
  std::unique_ptr<router::Router> inner_;
};

runtime::WorkerRecord record(kv::WorkerId id, int32_t max_len = 300) {
  runtime::WorkerRecord r;
  r.worker_id = id;
  r.endpoint = "w" + std::to_string(id);
  r.model_id = "tiny-id";
  r.block_size = 4;
  r.kv_blocks_total = 50;
  r.max_model_len = max_len;
  return r;
}

class EngineBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      workers_.push_back(std::make_shared<ScriptedWorker>());
      ASSERT_TRUE(requests_.serve("w" + std::to_string(i), workers_.back()).isOk());
      ASSERT_TRUE(discovery_.registerWorker(record(i, 300 - i)).isOk());
    }
    auto tmpl = model::ChatTemplate::parse(
        "{% for m in messages %}{% if m.content == 'boom' %}{{ raise_exception('no booms') }}{% endif %}"
        "[{{ m.role }}{% if m.name %}/{{ m.name }}{% endif %}:"
        "{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}{{ p.type }}={{ p.text }};"
        "{% endfor %}{% endif %}]{% endfor %}{% if add_generation_prompt %}{{ bos_token }}>{% endif %}");
    ASSERT_TRUE(tmpl.isOk()) << tmpl.status().toString();
    EngineBackendOptions o;
    o.served_model_name = "tiny";
    o.model_id = "tiny-id";
    o.bos_token = "<B>";
    o.worker_retry_ms = 50;
    router_ = std::make_shared<RecordingRouter>();
    auto b = EngineBackend::create(o, tinyTokenizer(), std::make_shared<const model::ChatTemplate>(std::move(*tmpl)),
                                   router_, {&requests_, &discovery_, &events_});
    ASSERT_TRUE(b.isOk()) << b.status().toString();
    backend_ = *b;
  }
  void TearDown() override {
    backend_.reset();
    events_.close();
  }

  GenerateRequest request(const std::string& id, std::vector<int32_t> prompt) {
    GenerateRequest r;
    r.request_id = id;
    r.model = "tiny";
    r.prompt_token_ids = std::move(prompt);
    return r;
  }

  runtime::InProcessRequestPlane requests_;
  runtime::InProcessDiscovery discovery_;
  runtime::InProcessEventPlane events_;
  std::vector<std::shared_ptr<ScriptedWorker>> workers_;
  std::shared_ptr<RecordingRouter> router_;
  std::shared_ptr<EngineBackend> backend_;
};

TEST_F(EngineBackendTest, ModelCardAndChatTemplate) {
  auto cards = backend_->models();
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].id, "tiny");
  EXPECT_EQ(cards[0].max_model_len, 299);  // the smaller of the workers'
  EXPECT_EQ(cards[0].vocab_size, tinyTokenizer()->vocabSize());

  std::vector<ChatMessage> msgs(2);
  msgs[0].role = "system";
  msgs[0].content = "be brief";
  msgs[0].name = "ops";
  msgs[1].role = "user";
  msgs[1].has_parts = true;
  msgs[1].parts = {"a", "b"};
  msgs[1].content = "ab";
  auto text = backend_->renderChat("tiny", msgs, {});
  ASSERT_TRUE(text.isOk()) << text.status().toString();
  EXPECT_EQ(*text, "[system/ops:be brief][user:text=a;text=b;]<B>>");
  msgs[0].content = "boom";
  ChatTemplateArgs no_prompt;
  no_prompt.add_generation_prompt = false;
  auto err = backend_->renderChat("tiny", msgs, no_prompt);
  ASSERT_FALSE(err.isOk());
  EXPECT_EQ(err.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(err.status().message(), "no booms");
}

TEST_F(EngineBackendTest, TokenizeDetokenizeAndIncrementalText) {
  auto ids = backend_->tokenize("tiny", "hello world, héllo", false);
  ASSERT_TRUE(ids.isOk());
  ASSERT_FALSE(ids->empty());
  auto text = backend_->detokenize("tiny", *ids);
  ASSERT_TRUE(text.isOk());
  EXPECT_EQ(*text, "hello world, héllo");
  auto detok = backend_->newDetokenizer("tiny");
  std::string streamed;
  for (int32_t id : *ids) streamed += detok->push(id);
  streamed += detok->flush();
  EXPECT_EQ(streamed, *text);
  std::string pieces;
  for (int32_t id : *ids) pieces += backend_->tokenPiece("tiny", id);
  EXPECT_EQ(pieces, *text);
  auto bad = backend_->detokenize("tiny", {1, -3});
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("tokens[1]"), std::string::npos);
}

TEST_F(EngineBackendTest, RoutesWithBlockHashesAndTranslatesRequestAndChunks) {
  GenerateRequest r = request("req-1", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  r.cache_salt = "tenant-a";
  r.sampling.temperature = 0.5;
  r.sampling.seed = 42;
  r.sampling.logprobs = 3;
  r.sampling.logit_bias[7] = -100.0f;
  r.stop.max_tokens = 5;
  r.stop.stop_token_ids = {9};
  r.stop.ignore_eos = true;
  std::vector<GenerationChunk> got;
  ASSERT_TRUE(backend_->generate(r, [&](GenerationChunk c) { got.push_back(std::move(c)); }).isOk());

  {
    std::lock_guard<std::mutex> lock(router_->mu);
    EXPECT_EQ(router_->model_id, "tiny-id");
    EXPECT_EQ(router_->hashes, kv::blockHashes(kv::rootHash("tiny-id", "tenant-a"), r.prompt_token_ids, 4));
    EXPECT_EQ(router_->hashes.size(), 2u);
    EXPECT_NE(router_->hashes, kv::blockHashes(kv::rootHash("tiny-id", ""), r.prompt_token_ids, 4));
  }
  auto& w = *workers_[0];
  ASSERT_EQ(w.received.size(), 1u);
  const auto& sent = w.received[0];
  EXPECT_EQ(sent.request_id, "req-1");
  EXPECT_EQ(sent.token_ids, r.prompt_token_ids);
  EXPECT_EQ(sent.cache_salt, "tenant-a");
  EXPECT_EQ(sent.overlap_blocks, 1);
  EXPECT_FLOAT_EQ(sent.sampling.temperature, 0.5f);
  EXPECT_EQ(sent.sampling.seed, std::optional<uint64_t>(42));
  EXPECT_EQ(sent.sampling.logprobs, 3);
  EXPECT_EQ(sent.sampling.logit_bias, (std::vector<std::pair<int32_t, float>>{{7, -100.0f}}));
  EXPECT_EQ(sent.stop.max_tokens, std::optional<int32_t>(5));
  EXPECT_EQ(sent.stop.stop_token_ids, (std::vector<int32_t>{9}));
  EXPECT_TRUE(sent.stop.ignore_eos);

  runtime::GenerateChunk c1;
  c1.token_ids = {11, 12};
  c1.logprobs = {{11, -0.5f, {{11, -0.5f}, {3, -2.0f}}}, {12, -0.25f, {}}};
  w.send("req-1", c1);
  runtime::GenerateChunk c2;
  c2.token_ids = {9};
  c2.finish = runtime::FinishReason::kStop;
  c2.usage = runtime::Usage{9, 8, 3};
  w.send("req-1", c2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].token_ids, (std::vector<int32_t>{11, 12}));
  ASSERT_EQ(got[0].logprobs.size(), 2u);
  EXPECT_EQ(got[0].logprobs[0].top, (std::vector<std::pair<int32_t, float>>{{11, -0.5f}, {3, -2.0f}}));
  EXPECT_FLOAT_EQ(got[0].logprobs[1].logprob, -0.25f);
  EXPECT_EQ(got[0].finish, FinishReason::kNone);
  EXPECT_FALSE(got[0].cached_tokens.has_value());
  EXPECT_EQ(got[1].finish, FinishReason::kStop);
  EXPECT_EQ(got[1].cached_tokens, std::optional<int32_t>(8));
  {
    std::lock_guard<std::mutex> lock(router_->mu);
    EXPECT_EQ(router_->finished, (std::vector<std::string>{"req-1"}));
  }
  EXPECT_DOUBLE_EQ(backend_->stats().prefix_cache_hit_rate, 8.0 / 9.0);
  backend_->abort("req-1");  // finished: not forwarded
  EXPECT_TRUE(w.aborted.empty());
}

TEST_F(EngineBackendTest, AbortGoesToTheRunningWorkerAndErrorsPassThrough) {
  std::vector<GenerationChunk> a, b;
  ASSERT_TRUE(backend_->generate(request("a", {1, 2}), [&](GenerationChunk c) { a.push_back(std::move(c)); }).isOk());
  ASSERT_TRUE(backend_->generate(request("b", {1, 2}), [&](GenerationChunk c) { b.push_back(std::move(c)); }).isOk());
  ASSERT_EQ(workers_[0]->received.size(), 1u);
  ASSERT_EQ(workers_[1]->received.size(), 1u);  // round-robin spread them
  backend_->abort("b");
  EXPECT_TRUE(workers_[0]->aborted.empty());
  EXPECT_EQ(workers_[1]->aborted, (std::vector<std::string>{"b"}));
  runtime::GenerateChunk fail;
  fail.finish = runtime::FinishReason::kError;
  fail.error = internalError("forward failed");
  workers_[0]->send("a", fail);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].finish, FinishReason::kError);
  EXPECT_EQ(a[0].error.message(), "forward failed");

  // A worker's refusal is the caller's answer, and the router is told the request is over.
  workers_[0]->refuse = resourceExhausted("queue full");
  workers_[1]->refuse = resourceExhausted("queue full");
  EXPECT_EQ(backend_->generate(request("c", {1}), [](GenerationChunk) {}).code(), StatusCode::kResourceExhausted);
  std::lock_guard<std::mutex> lock(router_->mu);
  EXPECT_EQ(router_->finished, (std::vector<std::string>{"a", "c"}));
}

// A worker that refused as Unavailable once (a transient failure; its lease and record stay)
// comes back after worker_retry_ms; one that discovery removed meanwhile does not.
TEST_F(EngineBackendTest, AWorkerThatRefusedAsUnavailableComesBackOnProbation) {
  workers_[0]->refuse = unavailable("connection refused");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(backend_->generate(request("a" + std::to_string(i), {1}), [](GenerationChunk) {}).isOk());
  }
  EXPECT_EQ(workers_[1]->received.size(), 2u);
  EXPECT_EQ(backend_->numWorkers(), 1u);
  workers_[0]->refuse = Status::ok();  // it recovered; discovery never changed its record
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(backend_->generate(request("b" + std::to_string(i), {1}), [](GenerationChunk) {}).isOk());
  }
  EXPECT_EQ(backend_->numWorkers(), 2u);
  EXPECT_GE(workers_[0]->received.size(), 1u);

  workers_[1]->refuse = unavailable("connection refused");
  ASSERT_TRUE(backend_->generate(request("c", {1}), [](GenerationChunk) {}).isOk());
  EXPECT_EQ(backend_->numWorkers(), 1u);
  discovery_.deregisterWorker(1);  // its lease expired: gone for good
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_TRUE(backend_->health().isOk());
  EXPECT_EQ(backend_->numWorkers(), 1u);
}

TEST_F(EngineBackendTest, FollowsDiscoveryAndAggregatesLoad) {
  EXPECT_EQ(backend_->numWorkers(), 2u);
  EXPECT_TRUE(backend_->health().isOk());
  kv::LoadMetrics l0;
  l0.worker_id = 0;
  l0.running = 2;
  l0.waiting = 1;
  l0.kv_blocks_total = 50;
  l0.kv_blocks_used = 7;
  kv::LoadMetrics l1 = l0;
  l1.worker_id = 1;
  l1.kv_blocks_used = 3;
  kv::LoadMetrics stranger = l0;
  stranger.worker_id = 77;  // not a worker of this model: ignored
  for (const auto& l : {l0, l1, stranger}) ASSERT_TRUE(events_.publish(l).isOk());
  kv::KvEventMessage msg;
  msg.worker_id = 1;
  msg.events.push_back(kv::AllCleared{});
  ASSERT_TRUE(events_.publish(msg).isOk());
  events_.flush();
  BackendStats s = backend_->stats();
  EXPECT_EQ(s.running, 4);
  EXPECT_EQ(s.waiting, 2);
  EXPECT_EQ(s.kv_blocks_total, 100);
  EXPECT_EQ(s.kv_blocks_used, 10);
  {
    std::lock_guard<std::mutex> lock(router_->mu);
    ASSERT_EQ(router_->kv_messages.size(), 1u);
    EXPECT_EQ(router_->kv_messages[0], msg);
  }

  discovery_.deregisterWorker(0);
  EXPECT_EQ(backend_->numWorkers(), 1u);
  EXPECT_EQ(backend_->stats().kv_blocks_total, 50);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(backend_->generate(request("x" + std::to_string(i), {1}), [](GenerationChunk) {}).isOk());
  }
  EXPECT_EQ(workers_[1]->received.size(), 3u);
  discovery_.deregisterWorker(1);
  EXPECT_EQ(backend_->health().code(), StatusCode::kUnavailable);
  EXPECT_EQ(backend_->generate(request("y", {1}), [](GenerationChunk) {}).code(), StatusCode::kUnavailable);
}

// Disaggregated serving: a decode worker (role "decode", w0) and a prefill worker (role
// "prefill", w1), scripted; prompts with more than 8 uncached tokens get a prefill leg first.
class DisaggBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      workers_.push_back(std::make_shared<ScriptedWorker>());
      ASSERT_TRUE(requests_.serve("w" + std::to_string(i), workers_.back()).isOk());
    }
    auto decode = record(0);
    decode.role = "decode";
    auto prefill = record(1);
    prefill.role = "prefill";
    prefill.transfer = {"tcp", "127.0.0.1:9"};
    ASSERT_TRUE(discovery_.registerWorker(decode).isOk());
    ASSERT_TRUE(discovery_.registerWorker(prefill).isOk());
    EngineBackendOptions o;
    o.served_model_name = "tiny";
    o.model_id = "tiny-id";
    o.max_local_prefill_tokens = 8;
    o.worker_retry_ms = 60000;
    o.prefill_router.policy = "round-robin";
    auto b = EngineBackend::create(o, tinyTokenizer(), nullptr,
                                   std::shared_ptr<router::Router>(
                                       std::move(router::makeRouter(router::RouterOptions{"round-robin"})).value()),
                                   {&requests_, &discovery_, &events_});
    ASSERT_TRUE(b.isOk()) << b.status().toString();
    backend_ = *b;
  }
  void TearDown() override {
    backend_.reset();
    events_.close();
  }
  GenerateRequest request(const std::string& id, int32_t tokens) {
    GenerateRequest r;
    r.request_id = id;
    r.model = "tiny";
    for (int32_t i = 0; i < tokens; ++i) r.prompt_token_ids.push_back(1 + i % 50);
    r.stop.max_tokens = 3;
    return r;
  }
  static bool waitFor(const std::function<bool()>& pred) {
    for (int i = 0; i < 500; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
  }
  static size_t received(ScriptedWorker& w) {
    std::lock_guard<std::mutex> lock(w.mu);
    return w.received.size();
  }
  double metric(const std::string& name) {
    const std::string text = backend_->stats().extra_metrics;
    const auto at = text.find(name + "{");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(text.find("} ", at) + 2));
  }
  static runtime::GenerateChunk finished(runtime::FinishReason why, std::vector<int32_t> tokens = {},
                                         std::string kv_address = "") {
    runtime::GenerateChunk c;
    c.token_ids = std::move(tokens);
    c.finish = why;
    c.usage = runtime::Usage{20, 0, 1};
    c.kv_address = std::move(kv_address);
    return c;
  }

  runtime::InProcessRequestPlane requests_;
  runtime::InProcessDiscovery discovery_;
  runtime::InProcessEventPlane events_;
  std::vector<std::shared_ptr<ScriptedWorker>> workers_;
  std::shared_ptr<EngineBackend> backend_;
};

TEST_F(DisaggBackendTest, ALongPromptIsPrefilledRemotelyAndItsDecodeLegNamesTheBlocks) {
  EXPECT_EQ(backend_->numWorkers(), 1u);  // prefill workers take no whole requests
  EXPECT_EQ(backend_->numPrefillWorkers(), 1u);
  std::mutex mu;
  std::vector<GenerationChunk> got;
  auto sink = [&](GenerationChunk c) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(c));
  };
  GenerateRequest r = request("long", 20);
  r.sampling.logprobs = 2;
  ASSERT_TRUE(backend_->generate(r, sink).isOk());
  auto& decode = *workers_[0];
  auto& prefill = *workers_[1];
  ASSERT_EQ(received(prefill), 1u);
  EXPECT_EQ(received(decode), 0u);  // not before its blocks exist
  {
    std::lock_guard<std::mutex> lock(prefill.mu);
    const auto& leg = prefill.received[0];
    EXPECT_TRUE(leg.disaggregation.prefill_only);
    EXPECT_EQ(leg.token_ids, r.prompt_token_ids);
    EXPECT_EQ(leg.request_id, "long");
  }
  runtime::GenerateChunk one;
  one.token_ids = {7};
  prefill.send("long", one);  // its token is not the client's
  prefill.send("long", finished(runtime::FinishReason::kLength, {}, "127.0.0.1:4242"));
  ASSERT_TRUE(waitFor([&] { return received(decode) == 1; }));
  {
    std::lock_guard<std::mutex> lock(decode.mu);
    const auto& leg = decode.received[0];
    EXPECT_FALSE(leg.disaggregation.prefill_only);
    EXPECT_EQ(leg.disaggregation.kv_address, "127.0.0.1:4242");
    EXPECT_EQ(leg.token_ids, r.prompt_token_ids);
    EXPECT_EQ(leg.sampling.logprobs, 2);
    EXPECT_EQ(leg.stop.max_tokens, std::optional<int32_t>(3));
  }
  runtime::GenerateChunk a;
  a.token_ids = {11, 12};
  decode.send("long", a);
  decode.send("long", finished(runtime::FinishReason::kLength, {13}));
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].token_ids, (std::vector<int32_t>{11, 12}));
    EXPECT_EQ(got[1].finish, FinishReason::kLength);
  }
  EXPECT_EQ(metric("turbine_disagg_remote_prefills_total"), 1);
  EXPECT_EQ(metric("turbine_disagg_prefill_fallbacks_total"), 0);

  // A short prompt is prefilled by the decode worker itself.
  ASSERT_TRUE(backend_->generate(request("short", 8), [](GenerationChunk) {}).isOk());
  ASSERT_EQ(received(decode), 2u);
  EXPECT_EQ(received(prefill), 1u);
  std::lock_guard<std::mutex> lock(decode.mu);
  EXPECT_TRUE(decode.received[1].disaggregation.kv_address.empty());
}

// Prompt logprobs need the prompt's logits: a long prompt that asks for them is prefilled by the
// decode worker itself, and its scores reach the sink.
TEST_F(DisaggBackendTest, APromptWithPromptLogprobsIsPrefilledLocally) {
  auto& decode = *workers_[0];
  auto& prefill = *workers_[1];
  std::mutex mu;
  std::vector<GenerationChunk> got;
  GenerateRequest r = request("scored", 20);
  r.sampling.prompt_logprobs = 1;
  ASSERT_TRUE(backend_->generate(r, [&](GenerationChunk c) {
                         std::lock_guard<std::mutex> lock(mu);
                         got.push_back(std::move(c));
                       }).isOk());
  ASSERT_EQ(received(decode), 1u);
  EXPECT_EQ(received(prefill), 0u);
  {
    std::lock_guard<std::mutex> lock(decode.mu);
    EXPECT_TRUE(decode.received[0].disaggregation.kv_address.empty());
    EXPECT_EQ(decode.received[0].sampling.prompt_logprobs, 1);
  }
  runtime::GenerateChunk first = finished(runtime::FinishReason::kLength, {5});
  first.prompt_logprobs.emplace();
  first.prompt_logprobs->push_back(runtime::TokenLogprobs{2, -0.75f, {{3, -0.5f}}, 2});
  decode.send("scored", first);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(got[0].prompt_logprobs.has_value());
  ASSERT_EQ(got[0].prompt_logprobs->size(), 1u);
  EXPECT_EQ((*got[0].prompt_logprobs)[0].token_id, 2);
  EXPECT_FLOAT_EQ((*got[0].prompt_logprobs)[0].logprob, -0.75f);
  EXPECT_EQ((*got[0].prompt_logprobs)[0].rank, 2);
  EXPECT_EQ(metric("turbine_disagg_remote_prefills_total"), 0);
}

TEST_F(DisaggBackendTest, AFailedOrRefusedPrefillLegFallsBackToALocalPrefill) {
  auto& decode = *workers_[0];
  auto& prefill = *workers_[1];
  ASSERT_TRUE(backend_->generate(request("failed", 20), [](GenerationChunk) {}).isOk());
  runtime::GenerateChunk err;
  err.finish = runtime::FinishReason::kError;
  err.error = internalError("forward failed");
  prefill.send("failed", err);
  ASSERT_TRUE(waitFor([&] { return received(decode) == 1; }));
  {
    std::lock_guard<std::mutex> lock(decode.mu);
    EXPECT_TRUE(decode.received[0].disaggregation.kv_address.empty());
    EXPECT_FALSE(decode.received[0].disaggregation.prefill_only);
  }
  EXPECT_EQ(metric("turbine_disagg_prefill_fallbacks_total"), 1);
  EXPECT_EQ(backend_->numPrefillWorkers(), 1u);  // an error is not the worker's absence

  {
    std::lock_guard<std::mutex> lock(prefill.mu);
    prefill.refuse = unavailable("connection refused");
  }
  ASSERT_TRUE(backend_->generate(request("refused", 20), [](GenerationChunk) {}).isOk());
  EXPECT_EQ(received(decode), 2u);  // at once, without a prefill leg
  EXPECT_EQ(metric("turbine_disagg_prefill_fallbacks_total"), 2);
  EXPECT_EQ(backend_->numPrefillWorkers(), 0u);  // Unavailable: out of routing for now
  ASSERT_TRUE(backend_->generate(request("alone", 20), [](GenerationChunk) {}).isOk());
  EXPECT_EQ(received(decode), 3u);
  EXPECT_EQ(metric("turbine_disagg_prefill_fallbacks_total"), 2);  // no prefill worker: not a fallback
}

TEST_F(DisaggBackendTest, AnAbortDuringThePrefillLegEndsTheRequestThere) {
  auto& decode = *workers_[0];
  auto& prefill = *workers_[1];
  std::mutex mu;
  std::vector<GenerationChunk> got;
  ASSERT_TRUE(backend_->generate(request("gone", 20), [&](GenerationChunk c) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(c));
  }).isOk());
  backend_->abort("gone");
  {
    std::lock_guard<std::mutex> lock(prefill.mu);
    EXPECT_EQ(prefill.aborted, (std::vector<std::string>{"gone"}));
  }
  prefill.send("gone", finished(runtime::FinishReason::kAbort));
  ASSERT_TRUE(waitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return !got.empty();
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(received(decode), 0u);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].finish, FinishReason::kAbort);
}

TEST_F(DisaggBackendTest, ARefusedDecodeLegIsRoutedAgainAndPrefilledLocally) {
  auto& decode = *workers_[0];
  auto& prefill = *workers_[1];
  // Routed to w0, the only decode worker then, which will refuse its decode leg.
  std::mutex mu;
  std::vector<GenerationChunk> got;
  ASSERT_TRUE(backend_->generate(request("r", 20), [&](GenerationChunk c) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(c));
  }).isOk());
  auto second = record(2);
  second.role = "decode";
  ASSERT_TRUE(discovery_.registerWorker(second).isOk());
  {
    std::lock_guard<std::mutex> lock(decode.mu);
    decode.refuse = unavailable("going away");
  }
  prefill.send("r", finished(runtime::FinishReason::kLength, {}, "127.0.0.1:4242"));
  auto& other = *workers_[2];
  ASSERT_TRUE(waitFor([&] { return received(other) == 1; }));
  {
    std::lock_guard<std::mutex> lock(other.mu);
    EXPECT_TRUE(other.received[0].disaggregation.kv_address.empty());  // prefilled where it landed
  }
  EXPECT_EQ(received(prefill), 1u);
  other.send("r", finished(runtime::FinishReason::kStop, {5}));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].token_ids, (std::vector<int32_t>{5}));
}

TEST(EngineBackendCreate, RequiresItsParts) {
  runtime::InProcessRequestPlane requests;
  runtime::InProcessDiscovery discovery;
  runtime::InProcessEventPlane events;
  EngineBackendOptions o;
  o.served_model_name = "m";
  o.model_id = "m";
  auto router = std::shared_ptr<router::Router>(std::move(router::makeRouter({"random"})).value());
  EXPECT_FALSE(EngineBackend::create(o, nullptr, nullptr, router, {&requests, &discovery, &events}).isOk());
  EXPECT_FALSE(EngineBackend::create(o, tinyTokenizer(), nullptr, nullptr, {&requests, &discovery, &events}).isOk());
  EXPECT_FALSE(EngineBackend::create(o, tinyTokenizer(), nullptr, router, {&requests, nullptr, &events}).isOk());
  auto ok = EngineBackend::create(o, tinyTokenizer(), nullptr, router, {&requests, &discovery, &events});
  ASSERT_TRUE(ok.isOk());
  EXPECT_EQ((*ok)->renderChat("m", {}, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*ok)->health().code(), StatusCode::kUnavailable);
  ok->reset();
  events.close();
}

}  // namespace
}  // namespace turbine::frontend
