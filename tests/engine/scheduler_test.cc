// Scheduler tests with FakeRunner, whose logits depend on the whole prefix read back from its
// paged KV memory: any scheduling, caching or preemption bug changes the tokens.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "engine/fake_runner.h"

namespace turbine::engine {
namespace {

using testing::FakeRunner;
using testing::fakeGreedy;
using testing::greedyRequest;
using testing::randomPrompt;

struct Result1 {
  std::map<int32_t, std::vector<int32_t>> tokens;  // by sample index
  std::map<int32_t, FinishReason> reason;
  std::map<int32_t, Usage> usage;
  std::map<int32_t, Status> status;
};

class Harness {
 public:
  Harness(int32_t vocab, int32_t block, int32_t blocks, int32_t max_len, SchedulerOptions o)
      : runner(vocab, block, blocks, max_len), sched(o, &runner) {}

  void add(Request r) {
    const RequestId id = r.request_id;
    ASSERT_TRUE(validateRequest(r, sched.limits()).isOk());
    ASSERT_TRUE(sched.add(std::move(r), [this, id](Output&& o) { collect(id, std::move(o)); })
                    .isOk());
  }

  // Runs until idle; checks the pool invariants after every step.
  void run(int max_steps = 100000) {
    for (int i = 0; i < max_steps && sched.hasWork(); ++i) {
      Status st = sched.step();
      ASSERT_TRUE(st.isOk()) << st.toString();
      ASSERT_TRUE(sched.pool().checkInvariants().isOk());
      if (after_step) after_step();
    }
    ASSERT_FALSE(sched.hasWork()) << "did not finish";
  }

  void collect(const RequestId& id, Output&& o) {
    auto& r = results[id];
    auto& t = r.tokens[o.index];
    t.insert(t.end(), o.token_ids.begin(), o.token_ids.end());
    if (o.finished()) {
      EXPECT_EQ(r.reason.count(o.index), 0u) << "two final chunks for " << id;
      r.reason[o.index] = o.finish_reason;
      r.usage[o.index] = *o.usage;
      r.status[o.index] = o.status;
    }
  }

  void expectPoolDrained() {
    EXPECT_EQ(sched.pool().numUsed(), 0);
    EXPECT_EQ(sched.pool().numFree() + sched.pool().numCachedFree(), sched.pool().numBlocks());
    EXPECT_EQ(sched.numRequests(), 0);
  }

  FakeRunner runner;
  Scheduler sched;
  std::map<RequestId, Result1> results;
  std::function<void()> after_step;
};

SchedulerOptions opts(int32_t budget = 2048, int32_t max_seqs = 256, bool caching = true) {
  SchedulerOptions o;
  o.model_id = "fake";
  o.max_num_batched_tokens = budget;
  o.max_num_seqs = max_seqs;
  o.enable_prefix_caching = caching;
  return o;
}


Request sampled(const std::string& id, std::vector<int32_t> prompt, uint64_t seed, int32_t n) {
  Request r;
  r.request_id = id;
  r.token_ids = std::move(prompt);
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = seed;
  r.stop.max_tokens = 12;
  r.stop.ignore_eos = true;
  r.n = n;
  return r;
}

constexpr int32_t kVocab = 97;

TEST(Scheduler, BatchInvarianceWithChunkedPrefill) {
  std::mt19937 rng(1);
  const auto shared = randomPrompt(rng, 40, kVocab);
  std::vector<Request> reqs;
  for (int i = 0; i < 32; ++i) {
    auto p = randomPrompt(rng, 1 + static_cast<int32_t>(rng() % 150), kVocab);
    if (i % 3 == 0) p.insert(p.begin(), shared.begin(), shared.end());
    reqs.push_back(greedyRequest("r" + std::to_string(i), p, 4 + static_cast<int32_t>(rng() % 20)));
  }
  Harness h(kVocab, 4, 2048, 512, opts(/*budget=*/64));
  for (const auto& r : reqs) h.add(r);
  h.run();
  EXPECT_LE(h.runner.max_batch_tokens, 64);
  EXPECT_GT(h.runner.max_batch_seqs, 8);
  for (const auto& r : reqs) {
    const auto& got = h.results[r.request_id];
    EXPECT_EQ(got.tokens.at(0), fakeGreedy(r.token_ids, kVocab, *r.stop.max_tokens))
        << r.request_id;
    EXPECT_EQ(got.reason.at(0), FinishReason::kLength);
    // Alone, in a fresh scheduler, the same tokens.
    Harness alone(kVocab, 4, 2048, 512, opts(64));
    alone.add(r);
    alone.run();
    EXPECT_EQ(alone.results[r.request_id].tokens.at(0), got.tokens.at(0));
  }
  h.expectPoolDrained();
}

TEST(Scheduler, PrefixCacheHitSameTokensAndCachedTokens) {
  std::mt19937 rng(2);
  const auto prompt = randomPrompt(rng, 50, kVocab);
  Harness h(kVocab, 4, 256, 512, opts());
  h.add(greedyRequest("cold", prompt, 10));
  h.run();
  EXPECT_EQ(h.results["cold"].usage.at(0).cached_tokens, 0);
  const int64_t computed_cold = h.sched.counters().prefill_tokens;
  h.add(greedyRequest("warm", prompt, 10));
  h.run();
  EXPECT_EQ(h.results["warm"].tokens.at(0), h.results["cold"].tokens.at(0));
  EXPECT_EQ(h.results["warm"].usage.at(0).cached_tokens, 48);  // 12 full blocks of 50
  EXPECT_EQ(h.results["warm"].usage.at(0).prompt_tokens, 50);
  EXPECT_EQ(h.sched.counters().prefill_tokens - computed_cold, 2);  // only 48..49 recomputed
  // A block-aligned prompt still recomputes its last token.
  const std::vector<int32_t> aligned(prompt.begin(), prompt.begin() + 48);
  h.add(greedyRequest("aligned", aligned, 3));
  h.run();
  EXPECT_EQ(h.results["aligned"].usage.at(0).cached_tokens, 44);
  EXPECT_EQ(h.results["aligned"].tokens.at(0), fakeGreedy(aligned, kVocab, 3));
  // Another salt shares nothing.
  Request salted = greedyRequest("salted", prompt, 10);
  salted.cache_salt = "tenant-b";
  h.add(salted);
  h.run();
  EXPECT_EQ(h.results["salted"].usage.at(0).cached_tokens, 0);
  EXPECT_EQ(h.results["salted"].tokens.at(0), h.results["cold"].tokens.at(0));
  h.expectPoolDrained();
  // Generated tokens' full blocks are cached too: prompt + output hits beyond the prompt.
  std::vector<int32_t> longer = prompt;
  const auto& out = h.results["cold"].tokens.at(0);
  longer.insert(longer.end(), out.begin(), out.end() - 1);  // 59 tokens whose KV was computed
  h.add(greedyRequest("continued", longer, 2));
  h.run();
  EXPECT_EQ(h.results["continued"].usage.at(0).cached_tokens, 56);
  EXPECT_EQ(h.results["continued"].tokens.at(0), fakeGreedy(longer, kVocab, 2));
}

TEST(Scheduler, PreemptionUnderTinyPoolKeepsTokens) {
  std::mt19937 rng(3);
  for (int variant = 0; variant < 4; ++variant) {
    const bool caching = variant % 2 == 0;
    // 24 blocks of 4 = 96 token slots; 8 requests of ~20 + 30 tokens each. Variants 2-3: a
    // tiny budget and long prompts first, so a chunked prefill preempts a planned decode.
    const int32_t budget = variant < 2 ? 48 : 6;
    Harness h(kVocab, 4, 24, 512, opts(budget, 256, caching));
    std::vector<Request> reqs;
    for (int i = 0; i < 8; ++i) {
      const int32_t len = variant < 2 ? 10 + static_cast<int32_t>(rng() % 20) : (i < 4 ? 40 : 3);
      reqs.push_back(greedyRequest("p" + std::to_string(i), randomPrompt(rng, len, kVocab),
                                   30));
      h.add(reqs.back());
    }
    h.run();
    EXPECT_GT(h.sched.counters().preemptions, 0) << "the pool was meant to run out";
    for (const auto& r : reqs) {
      EXPECT_EQ(h.results[r.request_id].tokens.at(0), fakeGreedy(r.token_ids, kVocab, 30))
          << r.request_id << " caching=" << caching;
      EXPECT_EQ(h.results[r.request_id].reason.at(0), FinishReason::kLength);
    }
    h.expectPoolDrained();
  }
}

// A chunked prefill of an OLDER sequence (sample 1 of an n=2 request, no prefix caching) runs
// while a NEWER request decodes; when the prefill needs a block, the newer request's planned
// decode is preempted out of the step.
TEST(Scheduler, PreemptionOfAPlannedDecode) {
  std::mt19937 rng(31);
  const auto prompt = randomPrompt(rng, 14, kVocab);
  const auto short_prompt = randomPrompt(rng, 2, kVocab);
  auto run = [&](int32_t blocks, int32_t budget) {
    auto h = std::make_unique<Harness>(kVocab, 4, blocks, 512, opts(budget, 256, false));
    h->add(sampled("g", prompt, 11, 2));
    h->add(greedyRequest("h", short_prompt, 12));
    h->run();
    return h;
  };
  auto roomy = run(64, 4);
  int64_t preemptions = 0;
  for (int32_t blocks = 7; blocks <= 12; ++blocks) {  // one sequence needs 7
    for (int32_t budget = 2; budget <= 6; ++budget) {
      auto tight = run(blocks, budget);
      preemptions += tight->sched.counters().preemptions;
      EXPECT_EQ(tight->results["g"].tokens, roomy->results["g"].tokens);
      EXPECT_EQ(tight->results["h"].tokens.at(0), fakeGreedy(short_prompt, kVocab, 12));
      tight->expectPoolDrained();
    }
  }
  EXPECT_GT(preemptions, 0);
}

TEST(Scheduler, SequenceOutgrowingThePoolFinishesWithLength) {
  Harness h(kVocab, 4, 4, 512, opts());  // 16 token slots
  Request r = greedyRequest("big", std::vector<int32_t>(10, 5), 100);
  r.stop.max_tokens.reset();
  h.add(r);
  h.run();
  EXPECT_EQ(h.results["big"].reason.at(0), FinishReason::kLength);
  EXPECT_EQ(h.results["big"].tokens.at(0), fakeGreedy(r.token_ids, kVocab, 7));  // 10+7 > 16
  h.expectPoolDrained();
}

TEST(Scheduler, AbortAndFinishReturnEveryBlock) {
  std::mt19937 rng(4);
  Harness h(kVocab, 4, 64, 512, opts(32));
  for (int i = 0; i < 12; ++i) h.add(greedyRequest("a" + std::to_string(i),
                                                   randomPrompt(rng, 30, kVocab), 40));
  for (int s = 0; s < 6; ++s) ASSERT_TRUE(h.sched.step().isOk());
  EXPECT_GT(h.sched.numRunning(), 0);
  EXPECT_GT(h.sched.numWaiting(), 0);
  // Abort some running, some waiting, one unknown.
  for (int i : {0, 3, 11, 10}) EXPECT_TRUE(h.sched.abort("a" + std::to_string(i)));
  EXPECT_FALSE(h.sched.abort("nope"));
  EXPECT_FALSE(h.sched.abort("a0"));  // already gone
  h.run();
  for (int i : {0, 3, 11, 10}) {
    EXPECT_EQ(h.results["a" + std::to_string(i)].reason.at(0), FinishReason::kAbort);
  }
  EXPECT_EQ(h.results["a5"].reason.at(0), FinishReason::kLength);
  h.expectPoolDrained();
}

TEST(Scheduler, BudgetDecodesFirstAndMaxNumSeqs) {
  std::mt19937 rng(5);
  Harness h(kVocab, 4, 512, 512, opts(/*budget=*/20, /*max_seqs=*/6));
  int64_t steps_with_prefill_and_decode = 0;
  h.runner.on_forward = [&](const Batch& b) {
    EXPECT_LE(b.numTokens(), 20);
    EXPECT_LE(b.seqs.size(), 6u);
    bool seen_prefill = false, mixed = false;
    for (const auto& s : b.seqs) {
      if (s.tokens.size() > 1) seen_prefill = true;
      if (s.tokens.size() == 1 && seen_prefill) ADD_FAILURE() << "decode after a prefill chunk";
      if (s.tokens.size() == 1 && b.seqs.front().tokens.size() == 1) mixed = true;
    }
    steps_with_prefill_and_decode += (mixed && seen_prefill) ? 1 : 0;
  };
  std::vector<Request> reqs;
  for (int i = 0; i < 10; ++i) {
    reqs.push_back(greedyRequest("b" + std::to_string(i), randomPrompt(rng, 37, kVocab), 8));
    h.add(reqs.back());
  }
  h.run();
  EXPECT_GT(steps_with_prefill_and_decode, 0);
  for (const auto& r : reqs) {
    EXPECT_EQ(h.results[r.request_id].tokens.at(0), fakeGreedy(r.token_ids, kVocab, 8));
  }
}

TEST(Scheduler, StopTokensMinTokensAndMaxModelLen) {
  std::mt19937 rng(6);
  const auto prompt = randomPrompt(rng, 9, kVocab);
  const auto ref = fakeGreedy(prompt, kVocab, 40);
  Harness h(kVocab, 4, 64, 30, opts());
  Request r = greedyRequest("stop", prompt, 20);
  r.stop.stop_token_ids = {ref[2]};
  h.add(r);
  Request eos = greedyRequest("eos", prompt, 20);
  eos.stop.ignore_eos = false;
  h.add(eos);
  Request len = greedyRequest("len", prompt, 1);
  len.stop.max_tokens.reset();
  h.add(len);
  h.run();
  const size_t first = std::find(ref.begin(), ref.end(), ref[2]) - ref.begin();
  EXPECT_EQ(h.results["stop"].tokens.at(0),
            std::vector<int32_t>(ref.begin(), ref.begin() + first + 1));  // stop token included
  EXPECT_EQ(h.results["stop"].reason.at(0), FinishReason::kStop);
  EXPECT_EQ(h.results["eos"].reason.at(0), FinishReason::kLength);  // no EOS ids configured
  EXPECT_EQ(h.results["len"].tokens.at(0).size(), 21u);  // 9 + 21 = max_model_len 30
  EXPECT_EQ(h.results["len"].reason.at(0), FinishReason::kLength);
  EXPECT_EQ(h.results["len"].usage.at(0).completion_tokens, 21);

  // EOS configured on the scheduler, with min_tokens holding it back.
  SchedulerOptions o = opts();
  o.eos_token_ids = {ref[0]};
  Harness h2(kVocab, 4, 64, 64, o);
  Request e = greedyRequest("e", prompt, 20);
  e.stop.ignore_eos = false;
  h2.add(e);
  Request m = greedyRequest("m", prompt, 20);
  m.stop.ignore_eos = false;
  m.stop.min_tokens = 3;
  h2.add(m);
  h2.run();
  EXPECT_EQ(h2.results["e"].tokens.at(0), std::vector<int32_t>{ref[0]});
  EXPECT_EQ(h2.results["e"].reason.at(0), FinishReason::kStop);
  EXPECT_GE(h2.results["m"].tokens.at(0).size(), 3u);
  EXPECT_NE(h2.results["m"].tokens.at(0)[0], ref[0]);
}

TEST(Scheduler, ValidationNamesTheProblem) {
  RequestLimits lim{kVocab, 100, 4, 10, 8};
  Request r = greedyRequest("v", std::vector<int32_t>(90, 1), 20);
  Status st = validateRequest(r, lim);
  ASSERT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("90"), std::string::npos);
  EXPECT_NE(st.message().find("100"), std::string::npos);
  r.stop.max_tokens = 5;  // fits max_model_len but needs 24 blocks of 10
  st = validateRequest(r, lim);
  EXPECT_NE(st.message().find("KV blocks"), std::string::npos) << st.message();
  Request bad = greedyRequest("b", {1, 2, kVocab}, 2);
  st = validateRequest(bad, lim);
  EXPECT_NE(st.message().find("token_ids[2]"), std::string::npos) << st.message();
  Request t = greedyRequest("t", {1}, 2);
  t.sampling.top_p = 0;
  EXPECT_NE(validateRequest(t, lim).message().find("top_p"), std::string::npos);
  t = greedyRequest("t", {1}, 2);
  t.n = 9;
  EXPECT_NE(validateRequest(t, lim).message().find("n must"), std::string::npos);
  t = greedyRequest("", {1}, 2);
  EXPECT_FALSE(validateRequest(t, lim).isOk());
  EXPECT_TRUE(validateRequest(greedyRequest("ok", {1, 2}, 2), lim).isOk());
}

TEST(Scheduler, SeededSamplingReproducibleAcrossBatchCompositions) {
  std::mt19937 rng(7);
  const auto prompt = randomPrompt(rng, 33, kVocab);
  Harness alone(kVocab, 4, 256, 512, opts());
  alone.add(sampled("x", prompt, 99, 1));
  alone.run();
  Harness busy(kVocab, 4, 256, 512, opts(40));
  for (int i = 0; i < 10; ++i) busy.add(sampled("o" + std::to_string(i),
                                                randomPrompt(rng, 20, kVocab), i, 1));
  busy.add(sampled("x", prompt, 99, 1));
  busy.run();
  EXPECT_EQ(alone.results["x"].tokens.at(0), busy.results["x"].tokens.at(0));
  // A different seed gives a different stream (12 tokens from a 97-way distribution).
  Harness other(kVocab, 4, 256, 512, opts());
  other.add(sampled("x", prompt, 100, 1));
  other.run();
  EXPECT_NE(alone.results["x"].tokens.at(0), other.results["x"].tokens.at(0));
}

TEST(Scheduler, ParallelSamplesShareThePrompt) {
  std::mt19937 rng(8);
  const auto prompt = randomPrompt(rng, 41, kVocab);
  Harness h(kVocab, 4, 256, 512, opts());
  h.add(sampled("n4", prompt, 5, 4));
  h.run();
  const auto& res = h.results["n4"];
  ASSERT_EQ(res.tokens.size(), 4u);
  std::set<std::vector<int32_t>> distinct;
  for (const auto& [i, t] : res.tokens) {
    EXPECT_EQ(t.size(), 12u);
    distinct.insert(t);
    EXPECT_EQ(res.usage.at(i).prompt_tokens, 41);
  }
  EXPECT_GT(distinct.size(), 1u);
  // Prompt computed once plus the partial block (1 token past 40) per extra sample.
  EXPECT_EQ(h.sched.counters().prefill_tokens, 41 + 3 * 1);
  // Each sample matches the same request run inside a busier batch.
  Harness busy(kVocab, 4, 256, 512, opts(16));
  for (int i = 0; i < 5; ++i) busy.add(sampled("o" + std::to_string(i),
                                               randomPrompt(rng, 30, kVocab), i, 2));
  busy.add(sampled("n4", prompt, 5, 4));
  busy.run();
  EXPECT_EQ(busy.results["n4"].tokens, res.tokens);
  h.expectPoolDrained();
  busy.expectPoolDrained();
}

TEST(Scheduler, ForwardFailureAbortsTheBatchWithTheError) {
  Harness h(kVocab, 4, 64, 512, opts());
  h.add(greedyRequest("f", {1, 2, 3}, 5));
  h.runner.fail_next = true;
  Status st = h.sched.step();
  EXPECT_FALSE(st.isOk());
  EXPECT_EQ(h.results["f"].reason.at(0), FinishReason::kAbort);
  EXPECT_NE(h.results["f"].status.at(0).message().find("injected"), std::string::npos);
  h.expectPoolDrained();
}

// Thousands of requests over shared prefixes in a small pool with random aborts: the KV event
// stream replayed into a KvBlockSet equals the pool's cached hashes at every step.
TEST(Scheduler, KvEventReplayReconstructsCachedHashes) {
  std::mt19937 rng(9);
  Harness h(kVocab, 4, 96, 512, opts(64, 16));
  kv::KvBlockSet mirror;
  uint64_t removed = 0, seq = 0;
  auto check = [&] {
    kv::KvEventMessage msg{0, seq++, h.sched.pool().takeEvents()};
    for (const auto& e : msg.events) removed += std::holds_alternative<kv::BlockRemoved>(e);
    ASSERT_TRUE(mirror.apply(msg).isOk());
    const auto cached = h.sched.pool().cachedHashes();
    ASSERT_EQ(std::set<kv::BlockHash>(cached.begin(), cached.end()),
              std::set<kv::BlockHash>(mirror.hashes().begin(), mirror.hashes().end()));
  };
  h.after_step = check;
  std::vector<std::vector<int32_t>> stems;
  for (int i = 0; i < 6; ++i) stems.push_back(randomPrompt(rng, 24, kVocab));
  int next = 0;
  for (int wave = 0; wave < 60; ++wave) {
    for (int i = 0; i < 40; ++i, ++next) {
      auto p = stems[rng() % stems.size()];
      p.resize(4 + rng() % 20);
      const auto tail = randomPrompt(rng, static_cast<int32_t>(rng() % 12), kVocab);
      p.insert(p.end(), tail.begin(), tail.end());
      h.add(greedyRequest("k" + std::to_string(next), p, 1 + static_cast<int32_t>(rng() % 8)));
    }
    for (int s = 0; s < 5 && h.sched.hasWork(); ++s) {
      ASSERT_TRUE(h.sched.step().isOk());
      check();
    }
    for (int a = 0; a < 6; ++a) h.sched.abort("k" + std::to_string(rng() % next));
    check();
    if (wave == 30) {
      h.sched.pool().resetPrefixCache();
      check();
    }
  }
  h.run();
  check();
  EXPECT_GT(removed, 50u) << "evictions were meant to happen";
  EXPECT_GT(mirror.size(), 10u);
  h.expectPoolDrained();
}

}  // namespace
}  // namespace turbine::engine
