// End-to-end tests of the bench client against the in-process stub OpenAI server.
#include "bench/runner.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/compare.h"
#include "bench/plots.h"
#include "bench/report.h"
#include "bench/stub_server.h"
#include "bench/tokenize_client.h"

namespace turbine::bench {
namespace {

std::unique_ptr<StubServer> startStub(StubServerOptions o) {
  auto s = StubServer::start(o);
  EXPECT_TRUE(s.isOk()) << s.status().message();
  return std::move(s).value();
}

PromptOptions completions() {
  PromptOptions p;
  p.model = "stub";
  return p;
}

TEST(Runner, SyntheticRunCountsTokensAndTimings) {
  StubServerOptions so;
  so.ttft_ms = 30;
  so.itl_ms = 4;
  so.fail_every = 5;  // requests 5, 10, 15, 20 fail
  auto stub = startStub(so);
  SyntheticOptions wo;
  wo.requests = 20;
  wo.input = {LengthDist::Kind::kUniform, 20, 60};
  wo.output = {LengthDist::Kind::kUniform, 8, 24};
  auto w = makeSyntheticWorkload(wo);
  PromptRenderer r(completions());
  RunnerOptions ro;
  ro.url = stub->url();
  ro.max_concurrency = 4;
  auto out = runBench(ro, *w, r);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->results.size(), 20u);
  EXPECT_LE(out->max_in_flight, 4);
  EXPECT_EQ(stub->stats().generate_requests, 20);
  int failed = 0;
  std::vector<double> gaps;  // every inter-token gap of every request
  for (const RequestResult& res : out->results) {
    if (!res.ok()) {
      ++failed;
      EXPECT_EQ(res.error_kind, "http_500");
      EXPECT_EQ(res.http_status, 500);
      EXPECT_NE(res.error.find("injected failure"), std::string::npos) << res.error;
      continue;
    }
    EXPECT_EQ(res.completion_tokens, res.output_tokens_requested);
    EXPECT_EQ(res.chunks, res.output_tokens_requested);
    EXPECT_EQ(res.prompt_tokens, res.input_tokens_requested);
    EXPECT_GE(res.cached_tokens, 0);
    EXPECT_GE(res.ttft_ms, so.ttft_ms * 0.9);
    EXPECT_LE(res.ttft_ms, res.e2e_ms);
    ASSERT_EQ(res.itl_ms.size(), static_cast<size_t>(res.chunks - 1));
    double sum = 0;
    for (double g : res.itl_ms) sum += g;
    // The ITLs span first to last token; e2e adds only the usage chunk and [DONE] after it, so
    // the sum never exceeds e2e - ttft and falls short of it by one scheduling delay at most
    // (bounds loose enough for a loaded CI machine; a double count or a lost gap breaks them).
    EXPECT_LE(sum, res.e2e_ms - res.ttft_ms + 1e-6);
    EXPECT_GE(sum, res.e2e_ms - res.ttft_ms - 50.0);
    const double mean_itl = sum / static_cast<double>(res.itl_ms.size());
    EXPECT_LE(mean_itl, so.itl_ms + 25.0);
    gaps.insert(gaps.end(), res.itl_ms.begin(), res.itl_ms.end());
  }
  EXPECT_EQ(failed, 4);
  // The stub sleeps itl_ms between tokens, so most gaps are at least that. Not each request's
  // mean: on a loaded machine a first token that arrives late (sent on time) shortens its
  // request's measured span, and tokens sent while the client was descheduled arrive together.
  ASSERT_FALSE(gaps.empty());
  std::nth_element(gaps.begin(), gaps.begin() + static_cast<long>(gaps.size() / 2), gaps.end());
  EXPECT_GE(gaps[gaps.size() / 2], so.itl_ms * 0.9);
  Aggregates a = aggregate(out->results, out->duration_s, {});
  EXPECT_EQ(a.requests_ok, 16);
  EXPECT_EQ(a.requests_failed, 4);
  EXPECT_EQ(a.errors["http_500"], 4);
  EXPECT_EQ(a.output_tokens_mismatch, 0);
  EXPECT_GT(a.output_tokens_per_s, 0);
  EXPECT_LE(a.ttft_ms.p50, a.ttft_ms.p99);
}

TEST(Runner, MooncakeReplaySendsSharedBlocksAsEqualTokens) {
  StubServerOptions so;
  so.ttft_ms = 1;
  so.itl_ms = 1;
  so.record_prompts = true;
  auto stub = startStub(so);
  std::vector<TraceRecord> recs = {{0, 1100, 2, {0, 1, 2}}, {5, 1000, 2, {0, 1}},
                                   {10, 900, 2, {0, 7}}};
  auto w = makeTraceWorkload(recs, {});
  PromptRenderer r(completions());
  RunnerOptions ro;
  ro.url = stub->url();
  ro.max_concurrency = 1;  // keep arrival order == server order
  auto out = runBench(ro, *w, r);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  auto prompts = stub->prompts();
  ASSERT_EQ(prompts.size(), 3u);
  EXPECT_EQ(prompts[0].size(), 1100u);
  EXPECT_EQ(prompts[1].size(), 1000u);
  auto block = [&](size_t p, size_t b) {
    size_t end = std::min(prompts[p].size(), (b + 1) * 512);
    return std::vector<int32_t>(prompts[p].begin() + static_cast<long>(b * 512),
                                prompts[p].begin() + static_cast<long>(end));
  };
  EXPECT_EQ(block(0, 0), block(1, 0));
  EXPECT_EQ(block(0, 0), block(2, 0));
  auto b01 = block(0, 1), b11 = block(1, 1), b21 = block(2, 1);
  EXPECT_TRUE(std::equal(b11.begin(), b11.end(), b01.begin()));   // id 1 == id 1
  EXPECT_FALSE(std::equal(b21.begin(), b21.end(), b01.begin()));  // id 7 != id 1
  // The stub's prefix cache saw the shared tokens: request 1 shares its first 1000 tokens with
  // request 0, i.e. 62 full 16-token blocks = 992 tokens.
  for (const auto& res : out->results) {
    if (res.id == 1) {
      EXPECT_EQ(res.cached_tokens, 992);
    }
  }
}

TEST(Runner, MultiTurnChatGrowsTheConversation) {
  StubServerOptions so;
  so.ttft_ms = 2;
  so.itl_ms = 1;
  auto stub = startStub(so);
  TokenizeClient tc(stub->url(), "stub", "");
  auto cal = calibrateWords(tc, PromptRenderer::defaultWords());
  ASSERT_TRUE(cal.isOk()) << cal.status().message();
  PromptOptions po;
  po.model = "stub";
  po.endpoint = Endpoint::kChat;
  po.mode = PromptMode::kText;
  po.words = cal->words;
  PromptRenderer r(po);
  MultiTurnOptions mo;
  mo.users = 3;
  mo.turns = 3;
  mo.input = {LengthDist::Kind::kFixed, 10, 0};
  mo.output = {LengthDist::Kind::kFixed, 5, 0};
  auto w = makeMultiTurnWorkload(mo, &r);
  RunnerOptions ro;
  ro.url = stub->url();
  ro.endpoint = Endpoint::kChat;
  auto out = runBench(ro, *w, r);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->results.size(), 9u);
  for (const auto& res : out->results) {
    ASSERT_TRUE(res.ok()) << res.error;
    EXPECT_EQ(res.chunks, 5);  // the role-only first chunk is not a token
    // Fake template: 3 tokens per message; user turns 10 words, replies 5 words.
    EXPECT_EQ(res.prompt_tokens, 13 + res.turn * (13 + 8));
    if (res.turn >= 2) {  // turn 0 (13 tokens) fills no 16-token block of the stub cache
      EXPECT_GT(res.cached_tokens, 0);
    }
  }
}

TEST(Runner, UnreachableServerIsOneClearError) {
  // Bind then close a port, so nothing listens there.
  uint16_t port;
  {
    auto s = startStub({});
    port = s->port();
  }
  auto w = makeSyntheticWorkload({});
  PromptRenderer r(completions());
  RunnerOptions ro;
  ro.url = "http://127.0.0.1:" + std::to_string(port);
  auto out = runBench(ro, *w, r);
  ASSERT_FALSE(out.isOk());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(out.status().message().find("cannot connect to http://127.0.0.1:"), std::string::npos)
      << out.status().message();
  ro.url = "ftp://x";
  EXPECT_EQ(runBench(ro, *w, r).status().code(), StatusCode::kInvalidArgument);
}

TEST(Runner, DurationStopsAnUnboundedRun) {
  auto stub = startStub({.ttft_ms = 5, .itl_ms = 5});
  SyntheticOptions wo;
  wo.requests = -1;
  wo.rate = 200;
  wo.output = {LengthDist::Kind::kFixed, 4, 0};
  auto w = makeSyntheticWorkload(wo);
  PromptRenderer r(completions());
  RunnerOptions ro;
  ro.url = stub->url();
  ro.duration_s = 0.5;
  int progress_calls = 0;
  ro.progress = [&](const RunProgress&) { ++progress_calls; };
  ro.progress_interval_s = 0.05;
  auto out = runBench(ro, *w, r);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_GT(out->results.size(), 40u);   // ~100 arrivals in 0.5 s
  EXPECT_LT(out->results.size(), 200u);
  EXPECT_LT(out->duration_s, 1.5);
  EXPECT_GE(progress_calls, 5);
}

TEST(Runner, SlowServerTimesOutPerRequest) {
  auto stub = startStub({.ttft_ms = 5000, .itl_ms = 1});
  SyntheticOptions wo;
  wo.requests = 3;
  auto w = makeSyntheticWorkload(wo);
  PromptRenderer r(completions());
  RunnerOptions ro;
  ro.url = stub->url();
  ro.timeout_s = 0.3;
  auto out = runBench(ro, *w, r);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->results.size(), 3u);
  for (const auto& res : out->results) {
    EXPECT_EQ(res.error_kind, "timeout") << res.error;
    EXPECT_EQ(res.http_status, 200);  // the header came; the tokens did not
  }
  EXPECT_LT(out->duration_s, 2.0);
}

TEST(Report, JsonPlotsAndCompare) {
  auto stub = startStub({.ttft_ms = 5, .itl_ms = 2, .fail_every = 7});
  const std::string dir = std::string(TURBINE_BINARY_DIR) + "/bench_report_test";
  std::filesystem::remove_all(dir);
  std::vector<nlohmann::json> reports;
  for (int run = 0; run < 2; ++run) {
    SyntheticOptions wo;
    wo.requests = 30;
    wo.output = {LengthDist::Kind::kFixed, 10, 0};
    auto w = makeSyntheticWorkload(wo);
    PromptRenderer r(completions());
    RunnerOptions ro;
    ro.url = stub->url();
    ro.max_concurrency = run == 0 ? 2 : 8;
    auto out = runBench(ro, *w, r);
    ASSERT_TRUE(out.isOk()) << out.status().message();
    Aggregates a = aggregate(out->results, out->duration_s, {.ttft_ms = 1e9, .itl_ms = 1e9});
    const std::string rd = dir + "/run" + std::to_string(run);
    auto report = reportJson({{"run", run}}, out->results, a, timeline(out->results, out->duration_s));
    ASSERT_TRUE(writeReport(rd, report).isOk());
    Status st = writeReportPlots(rd, report);
    ASSERT_TRUE(st.isOk()) << st.message();
    for (const auto& png : reportPlotNames()) EXPECT_TRUE(isPngFile(rd + "/" + png)) << png;
    // Parse it back from disk and check the fields.
    auto loaded = loadReport(rd + "/report.json");
    ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
    const auto& ag = (*loaded)["aggregates"];
    EXPECT_EQ(ag["requests_ok"].get<int>() + ag["requests_failed"].get<int>(), 30);
    EXPECT_GE(ag["requests_failed"].get<int>(), 4);
    EXPECT_GT(ag["output_tokens_per_s"].get<double>(), 0);
    for (const char* m : {"ttft_ms", "itl_ms", "e2e_ms"}) {
      for (const char* p : {"p50", "p90", "p99"}) EXPECT_TRUE(ag[m][p].is_number()) << m << p;
      EXPECT_LE(ag[m]["p50"].get<double>(), ag[m]["p99"].get<double>());
    }
    EXPECT_EQ((*loaded)["requests"].size(), 30u);
    EXPECT_EQ(ag["requests_good"], ag["requests_ok"]);
    reports.push_back(std::move(loaded).value());
  }
  std::string table = compareTable(reports[0], reports[1], "c2", "c8");
  EXPECT_NE(table.find("output tokens/s"), std::string::npos);
  EXPECT_NE(table.find("ttft_ms p99"), std::string::npos);
  Status st = writeComparePlots(dir, reports[0], reports[1], "c2", "c8");
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_TRUE(isPngFile(dir + "/compare_ttft_cdf.png"));
  EXPECT_TRUE(isPngFile(dir + "/compare_itl_cdf.png"));
  EXPECT_FALSE(loadReport(dir + "/run0/plot_data/ttft_cdf_0.dat").isOk());
  EXPECT_FALSE(isPngFile(dir + "/run0/report.json"));
}

}  // namespace
}  // namespace turbine::bench
