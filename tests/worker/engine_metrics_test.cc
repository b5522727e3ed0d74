// EngineMetrics: Prometheus text as vLLM and SGLang serve it, read into an engine's load.
#include "worker/engine_metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace turbine::worker {
namespace {

// The shape of vLLM's /metrics (V1): HELP/TYPE comments, a model_name label on every series,
// histograms, and the pool's size in the labels of cache_config_info.
const char* kVllm = R"(# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.25
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 123456.0
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7890.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",gpu_memory_utilization="0.9",num_gpu_blocks="4096",num_cpu_blocks="None"} 1.0
)";

TEST(PrometheusText, ParsesSamplesLabelsAndComments) {
  const PromSamples s = sumPrometheusText(kVllm);
  EXPECT_EQ(s.bad_lines, 0u);
  EXPECT_DOUBLE_EQ(s.sums.at("vllm:num_requests_running"), 7.0);
  EXPECT_DOUBLE_EQ(s.sums.at("vllm:prompt_tokens_total"), 123456.0);
  EXPECT_EQ(s.sums.count("# HELP"), 0u);
  EXPECT_EQ(s.labels.at("vllm:cache_config_info").at("num_gpu_blocks"), "4096");
  EXPECT_EQ(s.labels.at("vllm:num_requests_waiting").at("model_name"), "meta-llama/Llama-3.1-8B-Instruct");
  // Two series of one name are summed.
  EXPECT_DOUBLE_EQ(s.sums.at("vllm:time_to_first_token_seconds_bucket"), 12.0);
  EXPECT_EQ(s.series.at("vllm:time_to_first_token_seconds_bucket"), 2u);
}

TEST(PrometheusText, EscapesTimestampsAndBadLines) {
  const PromSamples s = sumPrometheusText(
      "a{x=\"q\\\"uo}te\",y=\"back\\\\slash\"} 1.5 1700000000000\r\n"
      "\n"
      "   # indented comment\n"
      "b 2e3\n"
      "c{unterminated=\"x} 4\n"
      "d{x=\"1\"}\n"
      "e notanumber\n"
      "f NaN\n"
      "g +Inf\n"
      "{x=\"1\"} 3\n"
      "h{} -2");
  EXPECT_DOUBLE_EQ(s.sums.at("a"), 1.5);
  EXPECT_EQ(s.labels.at("a").at("x"), "q\"uo}te");
  EXPECT_EQ(s.labels.at("a").at("y"), "back\\slash");
  EXPECT_DOUBLE_EQ(s.sums.at("b"), 2000.0);
  EXPECT_DOUBLE_EQ(s.sums.at("h"), -2.0);
  // c (unterminated labels), d (no value), e (not a number), the nameless line.
  EXPECT_EQ(s.bad_lines, 4u);
  // NaN and Inf are no reading.
  EXPECT_EQ(s.sums.count("f"), 0u);
  EXPECT_EQ(s.sums.count("g"), 0u);
  EXPECT_EQ(s.sums.count("c"), 0u);
}

TEST(EngineLoad, Vllm) {
  // Turbine blocks of 32 tokens: vLLM's 4096 blocks of 16 are 2048 of them.
  const EngineLoad l = engineLoad(sumPrometheusText(kVllm), UpstreamApi::kOpenAI, 32);
  ASSERT_TRUE(l.running && l.waiting && l.kv_blocks_total && l.kv_blocks_used);
  EXPECT_EQ(*l.running, 7);
  EXPECT_EQ(*l.waiting, 3);
  EXPECT_EQ(*l.kv_blocks_total, 2048);
  EXPECT_EQ(*l.kv_blocks_used, 512);  // 0.25 of the pool
  EXPECT_DOUBLE_EQ(*l.prompt_tokens, 123456.0);
  EXPECT_DOUBLE_EQ(*l.generation_tokens, 7890.0);
  // SGLang's names are not read for vLLM, nor vLLM's for SGLang.
  const EngineLoad s = engineLoad(sumPrometheusText(kVllm), UpstreamApi::kSglang, 32);
  EXPECT_FALSE(s.running || s.waiting || s.kv_blocks_total || s.kv_blocks_used);
}

TEST(EngineLoad, OlderVllmAndDataParallelRanks) {
  // Older vLLM: gpu_cache_usage_perc. Two engines (DP ranks): counts add up, the usage is their
  // mean, the pool twice one engine's.
  const EngineLoad l = engineLoad(sumPrometheusText(
                                      "vllm:num_requests_running{engine=\"0\"} 2\n"
                                      "vllm:num_requests_running{engine=\"1\"} 5\n"
                                      "vllm:num_requests_waiting{engine=\"0\"} 0\n"
                                      "vllm:num_requests_waiting{engine=\"1\"} 1\n"
                                      "vllm:gpu_cache_usage_perc{engine=\"0\"} 0.5\n"
                                      "vllm:gpu_cache_usage_perc{engine=\"1\"} 0.25\n"
                                      "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"100\"} 1\n"
                                      "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"100\"} 1\n"),
                                  UpstreamApi::kOpenAI, 16);
  EXPECT_EQ(l.running.value_or(-1), 7);
  EXPECT_EQ(l.waiting.value_or(-1), 1);
  EXPECT_EQ(l.kv_blocks_total.value_or(-1), 200);
  EXPECT_EQ(l.kv_blocks_used.value_or(-1), 75);
  EXPECT_FALSE(l.prompt_tokens.has_value());
}

TEST(EngineLoad, Sglang) {
  const char* text =
      "# HELP sglang:num_running_reqs The number of running requests.\n"
      "sglang:num_running_reqs{model_name=\"qwen\",tp_rank=\"0\"} 4\n"
      "sglang:num_queue_reqs{model_name=\"qwen\",tp_rank=\"0\"} 9\n"
      "sglang:max_total_num_tokens{model_name=\"qwen\",tp_rank=\"0\"} 163840\n"
      "sglang:num_used_tokens{model_name=\"qwen\",tp_rank=\"0\"} 1601\n"
      "sglang:token_usage{model_name=\"qwen\",tp_rank=\"0\"} 0.01\n"
      "sglang:prompt_tokens_total{model_name=\"qwen\",tp_rank=\"0\"} 10\n"
      "sglang:generation_tokens_total{model_name=\"qwen\",tp_rank=\"0\"} 20\n";
  const EngineLoad l = engineLoad(sumPrometheusText(text), UpstreamApi::kSglang, 16);
  EXPECT_EQ(l.running.value_or(-1), 4);
  EXPECT_EQ(l.waiting.value_or(-1), 9);
  EXPECT_EQ(l.kv_blocks_total.value_or(-1), 10240);
  EXPECT_EQ(l.kv_blocks_used.value_or(-1), 101);  // 1601 tokens: 101 blocks, the last partial
  EXPECT_DOUBLE_EQ(l.generation_tokens.value_or(-1), 20.0);
  // Without num_used_tokens, the usage fraction of the pool.
  const EngineLoad u = engineLoad(sumPrometheusText("sglang:num_running_reqs 1\n"
                                                      "sglang:max_total_num_tokens 1600\n"
                                                      "sglang:token_usage 0.5\n"),
                                  UpstreamApi::kSglang, 16);
  EXPECT_EQ(u.kv_blocks_used.value_or(-1), 50);
  EXPECT_FALSE(u.waiting.has_value());
}

// running, waiting, kv_blocks_total, kv_blocks_used, prefill and decode tokens/s of a report.
using Gauges = std::tuple<int32_t, int32_t, int32_t, int32_t, double, double>;
Gauges gauges(const kv::LoadMetrics& m) {
  return {m.running, m.waiting, m.kv_blocks_total, m.kv_blocks_used, m.tokens_per_s_prefill, m.tokens_per_s_decode};
}

// The worker's own counts without a reading; the engine's gauges over them with one, field by
// field (an engine that reports no pool keeps the worker's --num-kv-blocks).
TEST(UpstreamLoadReport, EngineGaugesOverTheWorkersOwnCounts) {
  const UpstreamClient::Load own{2, 12};
  EXPECT_EQ(gauges(upstreamLoadReport(own, 1000, std::nullopt)), Gauges(2, 0, 1000, 12, 0, 0));

  EngineMetricsPoller::Reading r;
  r.load = engineLoad(sumPrometheusText(kVllm), UpstreamApi::kOpenAI, 16);
  r.prompt_tokens_per_s = 300;
  r.generation_tokens_per_s = 40;
  // running 7: the engine's other clients count too.
  EXPECT_EQ(gauges(upstreamLoadReport(own, 1000, r)), Gauges(7, 3, 4096, 1024, 300, 40));

  EngineMetricsPoller::Reading partial;
  partial.load.waiting = 5;  // a queue gauge and nothing else
  EXPECT_EQ(gauges(upstreamLoadReport(own, 1000, partial)), Gauges(2, 5, 1000, 12, 0, 0));
}

TEST(EngineMetricsPoller, ReadsRatesAndReportsStateChanges) {
  std::atomic<int> calls{0};
  std::atomic<bool> up{false};
  std::vector<std::pair<bool, std::string>> states;  // on the caller's thread: pollOnce only
  EngineMetricsPoller p(
      [&]() -> Result<std::string> {
        const int n = ++calls;
        if (!up) return notFound("upstream /metrics: HTTP 404");
        return "vllm:num_requests_running 1\nvllm:num_requests_waiting 2\n"
               "vllm:prompt_tokens_total " +
               std::to_string(1000 * n) + "\n";
      },
      UpstreamApi::kOpenAI, 16, std::chrono::milliseconds(1000),
      [&](bool ok, const std::string& message) { states.emplace_back(ok, message); });
  p.pollOnce();
  p.pollOnce();
  ASSERT_EQ(states.size(), 1u);  // the first failure, once
  EXPECT_FALSE(states[0].first);
  EXPECT_NE(states[0].second.find("404"), std::string::npos);
  EXPECT_FALSE(p.latest(std::chrono::hours(1)).has_value());
  up = true;
  p.pollOnce();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  p.pollOnce();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_TRUE(states[1].first);
  auto r = p.latest(std::chrono::hours(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->load.waiting.value_or(-1), 2);
  // 1000 prompt tokens between the two readings, >= 50 ms apart.
  EXPECT_GT(r->prompt_tokens_per_s, 0.0);
  EXPECT_LE(r->prompt_tokens_per_s, 1000.0 / 0.05);
  // A reading older than max_age is none; a page without the gauges is a failure.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(p.latest(std::chrono::milliseconds(10)).has_value());
}

TEST(EngineMetricsPoller, PageWithoutGaugesIsNoReading) {
  std::vector<bool> states;
  EngineMetricsPoller p([]() -> Result<std::string> { return std::string("process_cpu_seconds_total 3\n"); },
                        UpstreamApi::kSglang, 16, std::chrono::milliseconds(1000),
                        [&](bool ok, const std::string& message) {
                          states.push_back(ok);
                          EXPECT_NE(message.find("sglang:num_running_reqs"), std::string::npos) << message;
                        });
  p.pollOnce();
  EXPECT_FALSE(p.latest(std::chrono::hours(1)).has_value());
  ASSERT_EQ(states.size(), 1u);
  EXPECT_FALSE(states[0]);
}

TEST(EngineMetricsPoller, ThreadPollsUntilStopped) {
  std::atomic<int> calls{0};
  EngineMetricsPoller p(
      [&]() -> Result<std::string> {
        ++calls;
        return std::string("vllm:num_requests_running 3\n");
      },
      UpstreamApi::kOpenAI, 16, std::chrono::milliseconds(5));
  p.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  p.stop();
  const int after = calls;
  EXPECT_GE(after, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(calls, after);  // stopped: no more reads
  EXPECT_EQ(p.latest(std::chrono::hours(1)).value().load.running.value_or(-1), 3);
}

}  // namespace
}  // namespace turbine::worker
