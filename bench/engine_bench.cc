// Serving-engine benchmark (issue 3 §5), through the real Engine (scheduler, block pool, sampler)
// over LlamaModel. One JSON object per line on stdout:
//   - decode: aggregate generated tokens/s with N concurrent greedy sequences (prompt 32 tokens,
//     --gen tokens each, ignore_eos), for N in --batches; also the engine's own loop overhead
//     per step (time outside forward()) as a fraction of the step.
//   - ttft: time to first token of a --ttft-prompt-token prompt, cold, and again after a request
//     that shares all but its last 64 tokens (1,984 of 2,048 cached at the default); and the cold
//     prompt scored (prompt_logprobs 0: every position's logits and log-softmax, no cache).
// Models are generated once (seed 1) into --models (default <build>/models) as <preset>-<dtype>.
// Run: build/bench/engine_bench [--preset medium] [--dtypes bf16,f32] [--threads 2]
//      [--batches 1,4,16,64] [--gen 32] [--ttft-prompt 2048] [--models DIR]
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "bench_models.h"
#include "engine/llama_model.h"
#include "model/make_model.h"
#include "model/model_loader.h"
#include "engine/cpu/kernels.h"

namespace turbine::engine {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string preset = "medium";
  std::vector<std::string> dtypes = {"bf16", "f32"};
  int threads = 2;
  std::vector<int> batches = {1, 4, 16, 64};
  int gen = 32;
  int ttft_prompt = 2048;
  std::string models;
};

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Result<std::string> ensureModel(const Args& a, const std::string& dtype) {
  return bench_util::ensureModel(a.models, a.preset, dtype);
}

using bench_util::greedyRequest;
using bench_util::randomPrompt;

Result<std::unique_ptr<Engine>> makeEngine(std::shared_ptr<const model::ModelWeights> w,
                                           const Args& a, int32_t max_len, int32_t blocks) {
  LlamaModelOptions mo;
  mo.threads = a.threads;
  mo.max_model_len = max_len;
  mo.num_blocks = blocks;
  TURBINE_ASSIGN_OR_RETURN(auto runner, LlamaModel::create(std::move(w), mo));
  EngineOptions eo;
  eo.model_id = "bench";
  eo.max_num_seqs = 256;
  eo.max_num_batched_tokens = 2048;
  return Engine::create(std::move(runner), eo);
}

Status benchDecode(std::shared_ptr<const model::ModelWeights> w, const Args& a,
                   const std::string& dtype) {
  const int32_t vocab = w->config.vocab_size;
  for (int n : a.batches) {
    const int32_t per_seq_blocks = (32 + a.gen) / 16 + 2;
    TURBINE_ASSIGN_OR_RETURN(auto eng, makeEngine(w, a, 32 + a.gen + 1, n * per_seq_blocks + 8));
    // Warm up (page in the weights, size the scratch buffers).
    {
      TURBINE_ASSIGN_OR_RETURN(auto s, eng->addStream(greedyRequest("warm", randomPrompt(32, vocab, 99), 4)));
      while (s->next()) {
      }
    }
    // Callbacks run on the step loop: record when every sequence has its first token (prefill
    // done) and when the last one finishes; decode throughput is over that steady interval.
    struct Progress {
      std::mutex mu;
      std::condition_variable cv;
      int have_first = 0;
      int finished = 0;
      Clock::time_point all_first{};
    };
    auto prog = std::make_shared<Progress>();
    for (int i = 0; i < n; ++i) {
      auto seen = std::make_shared<int>(0);
      Status st = eng->add(
          greedyRequest("r" + std::to_string(i), randomPrompt(32, vocab, static_cast<uint32_t>(i)), a.gen),
          [prog, seen, n](Output&& o) {
            std::lock_guard<std::mutex> lock(prog->mu);
            if (*seen == 0 && !o.token_ids.empty() && ++prog->have_first == n) {
              prog->all_first = Clock::now();
            }
            *seen += static_cast<int>(o.token_ids.size());
            if (o.finished()) {
              ++prog->finished;
              prog->cv.notify_all();
            }
          });
      TURBINE_RETURN_IF_ERROR(st);
    }
    Clock::time_point t1;
    {
      std::unique_lock<std::mutex> lock(prog->mu);
      prog->cv.wait(lock, [&] { return prog->finished == n; });
      t1 = Clock::now();
    }
    const Clock::time_point all_first = prog->all_first;
    int64_t decode_tokens = 0;
    EngineStats st = eng->stats();
    // Tokens generated after every sequence got its first one, over that time. (Sequences that
    // finish early leave a smaller batch at the end, so this slightly understates the rate.)
    int64_t after_first = static_cast<int64_t>(n) * (a.gen - 1);
    double secs = seconds(all_first, t1);
    std::printf(
        "{\"bench\":\"engine_decode\",\"preset\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,"
        "\"concurrency\":%d,\"gen\":%d,\"tokens_per_s\":%.1f,\"overhead_us_per_step\":%.1f,"
        "\"steps\":%lld}\n",
        a.preset.c_str(), dtype.c_str(), a.threads, n, a.gen,
        secs > 0 ? static_cast<double>(after_first) / secs : 0.0, st.overhead_us_per_step,
        static_cast<long long>(st.steps));
    (void)decode_tokens;
    std::fflush(stdout);
  }
  return Status::ok();
}

Result<double> timeToFirstToken(Engine& eng, const std::string& id, std::vector<int32_t> p) {
  TURBINE_ASSIGN_OR_RETURN(const bench_util::FirstToken f, bench_util::firstToken(eng, id, std::move(p)));
  return f.seconds;
}

Status benchTtft(std::shared_ptr<const model::ModelWeights> w, const Args& a,
                 const std::string& dtype) {
  const int32_t vocab = w->config.vocab_size;
  const int32_t n = a.ttft_prompt;
  TURBINE_ASSIGN_OR_RETURN(auto eng, makeEngine(w, a, n + 8, 3 * (n / 16 + 2)));
  TURBINE_ASSIGN_OR_RETURN(double warm, timeToFirstToken(*eng, "warm", randomPrompt(64, vocab, 7)));
  (void)warm;
  std::vector<int32_t> base = randomPrompt(n, vocab, 1);
  TURBINE_ASSIGN_OR_RETURN(double cold, timeToFirstToken(*eng, "cold", base));
  // Same first n-64 tokens, different last 64: n-64 tokens come from the prefix cache.
  std::vector<int32_t> other = base;
  std::vector<int32_t> tail = randomPrompt(64, vocab, 2);
  std::copy(tail.begin(), tail.end(), other.end() - 64);
  TURBINE_ASSIGN_OR_RETURN(double cached, timeToFirstToken(*eng, "cached", other));
  // The same prompt scored (prompt_logprobs 0, as an evaluation harness asks): computed whole, a
  // logits row and a log-softmax per position.
  engine::Request scored = bench_util::greedyRequest("scored", base, 1);
  scored.sampling.prompt_logprobs = 0;
  TURBINE_ASSIGN_OR_RETURN(const bench_util::FirstToken s, bench_util::firstToken(*eng, std::move(scored)));
  std::printf(
      "{\"bench\":\"engine_ttft\",\"preset\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,"
      "\"prompt\":%d,\"cached_tokens\":%d,\"ttft_cold_ms\":%.1f,\"ttft_cached_ms\":%.1f,"
      "\"speedup\":%.1f,\"ttft_scored_ms\":%.1f,\"scored_vs_cold\":%.2f}\n",
      a.preset.c_str(), dtype.c_str(), a.threads, n, n - 64, cold * 1e3, cached * 1e3,
      cached > 0 ? cold / cached : 0.0, s.seconds * 1e3, cold > 0 ? s.seconds / cold : 0.0);
  std::fflush(stdout);
  return Status::ok();
}

int run(const Args& a) {
  for (const std::string& dtype : a.dtypes) {
    auto path = ensureModel(a, dtype);
    if (!path.isOk()) {
      std::fprintf(stderr, "engine_bench: %s\n", path.status().toString().c_str());
      return 1;
    }
    auto w = model::loadModel(*path);
    if (!w.isOk()) {
      std::fprintf(stderr, "engine_bench: %s\n", w.status().toString().c_str());
      return 1;
    }
    auto weights = std::make_shared<const model::ModelWeights>(std::move(w).value());
    for (Status st : {benchDecode(weights, a, dtype), benchTtft(weights, a, dtype)}) {
      if (!st.isOk()) {
        std::fprintf(stderr, "engine_bench: %s\n", st.toString().c_str());
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace turbine::engine

int main(int argc, char** argv) {
  turbine::engine::cpu::reexecForBlasCore(argv);
  turbine::engine::Args a;
  a.models = turbine::bench_util::defaultModelsDir();
  using turbine::bench_util::splitList;
  const bool ok = turbine::bench_util::parseFlags(
      argc, argv,
      {{"--preset", [&](const std::string& v) { a.preset = v; }},
       {"--dtypes", [&](const std::string& v) { a.dtypes = splitList(v); }},
       {"--threads", [&](const std::string& v) { a.threads = std::stoi(v); }},
       {"--gen", [&](const std::string& v) { a.gen = std::stoi(v); }},
       {"--ttft-prompt", [&](const std::string& v) { a.ttft_prompt = std::stoi(v); }},
       {"--models", [&](const std::string& v) { a.models = v; }},
       {"--batches",
        [&](const std::string& v) {
          a.batches.clear();
          for (const auto& b : splitList(v)) a.batches.push_back(std::stoi(b));
        }}},
      "engine_bench [--preset medium] [--dtypes bf16,f32] [--threads 2] [--gen N] [--ttft-prompt N] "
      "[--batches 1,4,16,64] [--models DIR]");
  return ok ? turbine::engine::run(a) : 2;
}
