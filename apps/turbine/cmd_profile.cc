// turbine profile: measures the CPU engine's step times on a model (prefill chunks of several
// sizes and offsets, decode batches of several sizes and contexts, mixed steps) and fits the
// timing model's coefficients to them (src/mocker/profile_fit.h). The JSON it writes is a timing
// profile: `turbine worker --engine mock --mock-profile`, `turbine simulate --profile` and
// `turbine planner --profile` then describe this model on this machine.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "engine/scheduler.h"
#include "mocker/profile_fit.h"
#include "model/model_loader.h"
#include "process_util.h"

namespace turbine::app {
namespace {

struct ProfileArgs {
  std::string model, out, kv_cache_memory = "256MiB", kv_cache_dtype = "auto";
  int threads = 0, reps = 3, max_tokens = 512;
};

using Clock = std::chrono::steady_clock;

// One step of `chunks` prefill chunks (tokens, start) and `decodes` decodes at `context` each,
// timed (the fastest of reps, after one untimed run).
Result<mocker::StepSample> timeStep(engine::ModelRunner& runner, const std::vector<std::pair<int32_t, int32_t>>& chunks,
                                    int32_t decodes, int32_t context, int reps) {
  const int32_t bs = runner.blockSize();
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<engine::BlockId>> tables;
  mocker::StepSample s;
  int32_t next_block = 0;
  auto add = [&](int32_t n, int32_t start) -> Status {
    const int32_t blocks = (start + n + bs - 1) / bs;
    if (next_block + blocks > runner.numBlocks()) return invalidArgument("the KV pool is too small: raise --kv-cache-memory");
    tokens.emplace_back(static_cast<size_t>(n), 1);
    std::vector<engine::BlockId> t(static_cast<size_t>(blocks));
    std::iota(t.begin(), t.end(), next_block);
    next_block += blocks;
    tables.push_back(std::move(t));
    return Status::ok();
  };
  for (const auto& [n, start] : chunks) {
    TURBINE_RETURN_IF_ERROR(add(n, start));
    s.prefill_tokens += n;
    s.attention_pairs += static_cast<double>(n) * (start + n / 2.0);
  }
  for (int32_t i = 0; i < decodes; ++i) {
    TURBINE_RETURN_IF_ERROR(add(1, context));
    s.decodes += 1;
    s.decode_context += context + 1;
  }
  engine::Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t start = i < chunks.size() ? chunks[i].second : context;
    batch.seqs.push_back({tokens[i], start, tables[i], true});
  }
  std::vector<float> logits(static_cast<size_t>(batch.numLogits()) * runner.vocabSize());
  double best = 0;
  for (int r = 0; r <= reps; ++r) {
    const auto t0 = Clock::now();
    TURBINE_RETURN_IF_ERROR(runner.forward(batch, logits));
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (r == 1 || (r > 1 && us < best)) best = us;  // run 0 warms up
  }
  s.us = best;
  return s;
}

Status runProfile(const ProfileArgs& a) {
  TURBINE_ASSIGN_OR_RETURN(model::ModelWeights w, model::loadModel(a.model));
  auto weights = std::make_shared<const model::ModelWeights>(std::move(w));
  CpuRunnerOptions ro;
  ro.threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  TURBINE_ASSIGN_OR_RETURN(ro.kv_cache_bytes, parseBytes(a.kv_cache_memory, "--kv-cache-memory"));
  ro.kv_cache_dtype = a.kv_cache_dtype;
  TURBINE_ASSIGN_OR_RETURN(auto runner, makeCpuRunner(weights, ro));
  const int32_t top = std::min(a.max_tokens, runner->maxModelLen() / 2);
  if (top < 16) return invalidArgument("--max-tokens must be >= 16 (and the model's length >= 32)");
  std::vector<mocker::StepSample> samples;
  std::printf("%-34s %10s %10s\n", "step", "measured", "fitted");
  auto measure = [&](const std::vector<std::pair<int32_t, int32_t>>& chunks, int32_t decodes, int32_t context) -> Status {
    TURBINE_ASSIGN_OR_RETURN(auto s, timeStep(*runner, chunks, decodes, context, a.reps));
    samples.push_back(s);
    return Status::ok();
  };
  for (int32_t n = 16; n <= top; n *= 2) TURBINE_RETURN_IF_ERROR(measure({{n, 0}}, 0, 0));
  TURBINE_RETURN_IF_ERROR(measure({{top / 4, top / 2}}, 0, 0));
  TURBINE_RETURN_IF_ERROR(measure({{top / 4, top}}, 0, 0));
  for (int32_t b : {1, 2, 4, 8, 16}) {
    for (int32_t ctx : {16, top}) TURBINE_RETURN_IF_ERROR(measure({}, b, ctx));
  }
  TURBINE_RETURN_IF_ERROR(measure({{top / 2, 0}}, 4, top / 2));
  mocker::TimingProfile base;
  base.max_num_batched_tokens = engine::SchedulerOptions{}.max_num_batched_tokens;
  base.max_num_seqs = engine::SchedulerOptions{}.max_num_seqs;
  TURBINE_ASSIGN_OR_RETURN(mocker::ProfileFit fit, mocker::fitTimingProfile(samples, base));
  for (const auto& s : samples) {
    const std::string shape = "prefill " + std::to_string(static_cast<int64_t>(s.prefill_tokens)) + ", decodes " +
                              std::to_string(static_cast<int64_t>(s.decodes));
    std::printf("%-34s %8.0fus %8.0fus\n", shape.c_str(), s.us, mocker::predictStepUs(fit.profile, s));
  }
  const auto& p = fit.profile;
  const nlohmann::json j = {{"step_base_us", p.step_base_us}, {"prefill_us_per_token", p.prefill_us_per_token},
                            {"attention_us_per_pair", p.attention_us_per_pair}, {"decode_us_per_seq", p.decode_us_per_seq},
                            {"kv_read_us_per_token", p.kv_read_us_per_token},
                            {"onboard_us_per_token", p.onboard_us_per_token},
                            {"max_num_batched_tokens", p.max_num_batched_tokens}, {"max_num_seqs", p.max_num_seqs}};
  std::printf("fit over %zu steps: mean error %.1f%%, worst %.1f%%\n%s\n", samples.size(),
              100 * fit.mean_relative_error, 100 * fit.max_relative_error, j.dump(2).c_str());
  if (!a.out.empty()) {
    std::ofstream out(a.out);
    out << j.dump(2) << "\n";
    if (!out) return ioError("cannot write '" + a.out + "'");
  }
  return Status::ok();
}

}  // namespace

void addProfileCommand(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ProfileArgs>();
  auto* cmd = app.add_subcommand("profile", "Measure the CPU engine's step times on a model and fit a timing profile");
  cmd->add_option("--model", a->model, "HF model folder or .gguf file")->required();
  cmd->add_option("--out", a->out, "Write the timing profile JSON here");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--reps", a->reps, "Timed runs of each step (the fastest counts)")
      ->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens, "Largest prefill chunk and decode context measured")
      ->check(CLI::Range(16, 1 << 20))->capture_default_str();
  cmd->add_option("--kv-cache-memory", a->kv_cache_memory, "KV pool for the measured steps")->capture_default_str();
  cmd->add_option("--kv-cache-dtype", a->kv_cache_dtype, "KV cache element type")
      ->check(CLI::IsMember(kKvCacheDtypes))->capture_default_str();
  cmd->callback([a, &exit_code] {
    Status st = runProfile(*a);
    exit_code = st ? 0 : reportError("profile", st);
  });
}

}  // namespace turbine::app
