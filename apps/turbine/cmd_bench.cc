// turbine bench: load generator and trace replayer for any OpenAI-compatible endpoint;
// turbine bench compare A.json B.json: two reports side by side.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "bench/compare.h"
#include "bench/plots.h"
#include "bench/report.h"
#include "bench/runner.h"
#include "bench/tokenize_client.h"
#include "bench/workload.h"
#include "commands.h"

namespace turbine::app {
namespace {

using namespace turbine::bench;

struct BenchFlags {
  std::string url = "http://127.0.0.1:8000";
  std::string model, workload = "synthetic", trace, endpoint = "auto", prompt_mode = "auto";
  std::string api_key, out, input_len = "128", output_len = "128";
  int64_t requests = 100;
  int32_t concurrency = 0, users = 8, turns = 4, system_prompt_tokens = 0;
  int32_t max_input_len = 0, max_output_len = 0;
  double rate = 0, duration = 0, shared_prefix = 0, time_scale = 1, rate_scale = 1;
  double slo_ttft_ms = 0, slo_itl_ms = 0, timeout = 600;
  uint64_t seed = 0;
  bool no_plots = false, requests_given = false, concurrency_given = false;
};

struct CompareFlags {
  std::string a, b, out, label_a = "A", label_b = "B";
};

// A bar redrawn in place on a terminal; on a pipe or file, one line every 10 s.
void drawProgress(const RunProgress& p, double duration_s) {
  static const bool kTty = isatty(STDERR_FILENO) == 1;
  static double last_line_s = -1e9;
  if (!kTty) {
    if (p.elapsed_s - last_line_s < 10.0 && p.finished != p.total) return;
    last_line_s = p.elapsed_s;
  }
  double frac = p.total > 0 ? static_cast<double>(p.finished) / static_cast<double>(p.total)
                : duration_s > 0 ? p.elapsed_s / duration_s : 0.0;
  frac = std::min(1.0, std::max(0.0, frac));
  constexpr int kWidth = 28;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  const std::string total = p.total >= 0 ? std::to_string(p.total) : "?";
  const double tps = p.elapsed_s > 0 ? static_cast<double>(p.output_tokens) / p.elapsed_s : 0.0;
  if (kTty) std::fprintf(stderr, "\r");
  std::fprintf(stderr, "bench [%s] %lld/%s done  %d in flight  %lld failed  %.1fs  %.0f tok/s  ",
               bar.c_str(), static_cast<long long>(p.finished), total.c_str(), p.in_flight,
               static_cast<long long>(p.failed), p.elapsed_s, tps);
  if (!kTty) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

// Decides endpoint and prompt mode and, when the server has /tokenize, calibrates the words.
Result<PromptOptions> promptOptions(const BenchFlags& f) {
  PromptOptions p;
  p.model = f.model;
  p.seed = f.seed;
  p.endpoint = f.endpoint == "chat" || (f.endpoint == "auto" && f.workload == "multiturn")
                   ? Endpoint::kChat
                   : Endpoint::kCompletions;
  if (p.endpoint == Endpoint::kChat && f.prompt_mode == "token-ids") {
    return invalidArgument("--prompt-mode token-ids needs --endpoint completions");
  }
  p.mode = f.prompt_mode == "text" || p.endpoint == Endpoint::kChat ? PromptMode::kText
                                                                    : PromptMode::kTokenIds;
  TokenizeClient client(f.url, f.model, f.api_key);
  Result<WordCalibration> cal = calibrateWords(client, PromptRenderer::defaultWords());
  if (cal.isOk()) {
    p.words = cal->words;
    p.token_pool = cal->ids;
    p.special_tokens = cal->special_tokens;
    std::fprintf(stderr, "prompts: %zu single-token words calibrated with the server's /tokenize\n",
                 cal->words.size());
  } else if (cal.status().code() == StatusCode::kUnavailable) {
    return cal.status();
  } else {
    std::fprintf(stderr, "prompts: no usable /tokenize (%s); %s\n", cal.status().message().c_str(),
                 p.mode == PromptMode::kTokenIds ? "token ids drawn from [1000, 21000)"
                                                 : "text lengths are approximate");
  }
  return p;
}

// `recs`: the trace, read before anything touches the server (trace workload only).
Result<std::unique_ptr<Workload>> makeWorkload(const BenchFlags& f, const PromptRenderer* r,
                                               std::vector<TraceRecord> recs) {
  TURBINE_ASSIGN_OR_RETURN(LengthDist in, parseLengthDist(f.input_len));
  TURBINE_ASSIGN_OR_RETURN(LengthDist out, parseLengthDist(f.output_len));
  if (f.workload == "trace") {
    TraceWorkloadOptions o;
    o.time_scale = f.time_scale;
    o.rate_scale = f.rate_scale;
    o.max_requests = f.requests_given ? f.requests : -1;
    o.max_input_len = f.max_input_len;
    o.max_output_len = f.max_output_len;
    return makeTraceWorkload(std::move(recs), o);
  }
  if (f.workload == "multiturn") {
    MultiTurnOptions o{f.users, f.turns, in, out, f.system_prompt_tokens, f.seed};
    return makeMultiTurnWorkload(o, r);
  }
  SyntheticOptions o;
  o.requests = f.requests_given || f.duration <= 0 ? f.requests : -1;
  o.input = in;
  o.output = out;
  o.rate = f.rate;
  o.shared_prefix = f.shared_prefix;
  o.seed = f.seed;
  return makeSyntheticWorkload(o);
}

nlohmann::json configJson(const BenchFlags& f, const PromptOptions& p) {
  return {{"url", f.url}, {"model", f.model}, {"workload", f.workload}, {"trace", f.trace},
          {"endpoint", p.endpoint == Endpoint::kChat ? "chat" : "completions"},
          {"prompt_mode", p.mode == PromptMode::kText ? "text" : "token-ids"},
          {"requests", f.requests}, {"concurrency", f.concurrency}, {"rate", f.rate},
          {"input_len", f.input_len}, {"output_len", f.output_len}, {"duration_s", f.duration},
          {"seed", f.seed}, {"shared_prefix", f.shared_prefix}, {"users", f.users},
          {"turns", f.turns}, {"time_scale", f.time_scale}, {"rate_scale", f.rate_scale},
          {"slo_ttft_ms", f.slo_ttft_ms}, {"slo_itl_ms", f.slo_itl_ms}};
}

// Returns the exit code.
int runBenchCommand(const BenchFlags& f) {
  if (f.model.empty()) {
    std::fprintf(stderr, "turbine bench: error: --model is required\n");
    return 2;
  }
  if (f.rate > 0 && f.workload != "synthetic") {
    std::fprintf(stderr, "turbine bench: error: --rate applies to --workload synthetic only\n");
    return 2;
  }
  std::vector<TraceRecord> recs;
  if (f.workload == "trace") {
    if (f.trace.empty()) {
      std::fprintf(stderr, "turbine bench: error: --workload trace needs --trace FILE\n");
      return 2;
    }
    Result<std::vector<TraceRecord>> read = readTrace(f.trace);
    if (!read.isOk()) return reportError("bench", read.status());
    recs = std::move(read).value();
  }
  Result<PromptOptions> popts = promptOptions(f);
  if (!popts.isOk()) {
    return popts.status().code() == StatusCode::kInvalidArgument ? (reportError("bench", popts.status()), 2)
                                                                 : reportError("bench", popts.status());
  }
  PromptRenderer renderer(*popts);
  Result<std::unique_ptr<Workload>> wl = makeWorkload(f, &renderer, std::move(recs));
  if (!wl.isOk()) {
    reportError("bench", wl.status());
    return 2;  // only flag values fail here
  }
  RunnerOptions ro;
  ro.url = f.url;
  ro.endpoint = popts->endpoint;
  ro.api_key = f.api_key;
  ro.max_concurrency = f.concurrency_given ? f.concurrency
                       : (f.workload == "synthetic" && f.rate <= 0) ? 8 : 0;
  ro.duration_s = f.duration;
  ro.timeout_s = f.timeout;
  const double dur = f.duration;
  ro.progress = [dur](const RunProgress& p) { drawProgress(p, dur); };
  Result<RunOutput> run = runBench(ro, **wl, renderer);
  if (isatty(STDERR_FILENO) == 1) std::fprintf(stderr, "\n");
  if (!run.isOk()) return reportError("bench", run.status());
  Aggregates agg = aggregate(run->results, run->duration_s, {f.slo_ttft_ms, f.slo_itl_ms});
  agg.max_concurrency = run->max_in_flight;
  std::printf("%s", summaryTable(agg).c_str());
  std::fprintf(stderr, "client: %.2f s CPU on the event loop over %.2f s (%.1f%%), %lld connections\n",
               run->loop_cpu_s, run->duration_s,
               run->duration_s > 0 ? 100.0 * run->loop_cpu_s / run->duration_s : 0.0,
               static_cast<long long>(run->connections_opened));
  if (run->loop_lag_p99_ms > 10.0) {
    std::fprintf(stderr, "turbine bench: warning: the client's event loop lagged (p99 %.1f ms); "
                 "client-side timings are inflated by about that much\n", run->loop_lag_p99_ms);
  }
  for (const auto& r : run->results) {
    if (!r.ok()) {
      std::fprintf(stderr, "first failure: request %llu: %s\n", static_cast<unsigned long long>(r.id),
                   r.error.c_str());
      break;
    }
  }
  if (!f.out.empty()) {
    nlohmann::json report = reportJson(configJson(f, *popts), run->results, agg,
                                       timeline(run->results, run->duration_s));
    Status st = writeReport(f.out, report);
    if (!st.isOk()) return reportError("bench", st);
    if (!f.no_plots) {
      st = writeReportPlots(f.out, report);
      if (!st.isOk()) std::fprintf(stderr, "turbine bench: warning: plots: %s\n", st.message().c_str());
    }
    std::fprintf(stderr, "wrote %s/report.json%s\n", f.out.c_str(), f.no_plots ? "" : " and plots");
  }
  if (agg.requests_total > 0 && agg.requests_ok == 0) {
    std::fprintf(stderr, "turbine bench: error: all %lld requests failed\n",
                 static_cast<long long>(agg.requests_total));
    return 1;
  }
  return 0;
}

int runCompare(const CompareFlags& c) {
  Result<nlohmann::json> a = loadReport(c.a);
  if (!a.isOk()) return reportError("bench compare", a.status());
  Result<nlohmann::json> b = loadReport(c.b);
  if (!b.isOk()) return reportError("bench compare", b.status());
  std::printf("A = %s\nB = %s\n%s", c.a.c_str(), c.b.c_str(),
              compareTable(*a, *b, c.label_a, c.label_b).c_str());
  if (!c.out.empty()) {
    Status st = writeComparePlots(c.out, *a, *b, c.label_a, c.label_b);
    if (!st.isOk()) return reportError("bench compare", st);
    std::fprintf(stderr, "wrote compare_ttft_cdf.png, compare_itl_cdf.png, compare_e2e_cdf.png to %s\n", c.out.c_str());
  }
  return 0;
}

void addCompare(CLI::App* bench, int& exit_code) {
  auto* cmp = bench->add_subcommand("compare", "Compare two report.json files side by side");
  auto c = std::make_shared<CompareFlags>();
  cmp->add_option("a", c->a, "Baseline report.json (A)")->required();
  cmp->add_option("b", c->b, "Candidate report.json (B)")->required();
  cmp->add_option("--out", c->out, "Folder for overlaid CDF plots");
  cmp->add_option("--label-a", c->label_a, "Label of A")->capture_default_str();
  cmp->add_option("--label-b", c->label_b, "Label of B")->capture_default_str();
  cmp->callback([c, &exit_code] { exit_code = runCompare(*c); });
}

}  // namespace

void addBenchCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "Load-test an OpenAI-compatible endpoint (synthetic, multi-turn, trace replay)");
  auto f = std::make_shared<BenchFlags>();
  cmd->add_option("--url", f->url, "Server base URL")->capture_default_str();
  cmd->add_option("--model", f->model, "Model name sent in requests");
  cmd->add_option("--workload", f->workload, "Workload")
      ->check(CLI::IsMember({"synthetic", "multiturn", "trace"}))->capture_default_str();
  cmd->add_option("--trace", f->trace, "Trace file: Mooncake .jsonl or Azure .csv");
  cmd->add_option("--endpoint", f->endpoint, "API (auto: chat for multiturn, else completions)")
      ->check(CLI::IsMember({"auto", "chat", "completions"}))->capture_default_str();
  cmd->add_option("--prompt-mode", f->prompt_mode, "Prompts as token ids (completions) or text")
      ->check(CLI::IsMember({"auto", "token-ids", "text"}))->capture_default_str();
  cmd->add_option("--requests", f->requests, "Number of requests (trace: first N)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--concurrency", f->concurrency, "Max requests in flight (synthetic default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--rate", f->rate, "Poisson arrival rate, requests/s (synthetic)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--input-len", f->input_len, "Prompt tokens: N, uniform:LO:HI, normal:MEAN:SD")
      ->capture_default_str();
  cmd->add_option("--output-len", f->output_len, "Output tokens: N, uniform:LO:HI, normal:MEAN:SD")
      ->capture_default_str();
  cmd->add_option("--shared-prefix", f->shared_prefix, "Fraction of each prompt shared by all")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--users", f->users, "Multiturn: users")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--turns", f->turns, "Multiturn: turns per user")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--system-prompt-len", f->system_prompt_tokens, "Multiturn: shared system prompt tokens")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--time-scale", f->time_scale, "Trace: multiply timestamps")->check(CLI::PositiveNumber);
  cmd->add_option("--rate-scale", f->rate_scale, "Trace: multiply the arrival rate")->check(CLI::PositiveNumber);
  cmd->add_option("--max-input-len", f->max_input_len, "Trace: truncate prompts to N tokens")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-output-len", f->max_output_len, "Trace: cap outputs to N tokens")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--duration", f->duration, "Stop issuing after S seconds")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", f->seed, "Seed of lengths, arrivals and prompts")->capture_default_str();
  cmd->add_option("--api-key", f->api_key, "Bearer token");
  cmd->add_option("--slo-ttft-ms", f->slo_ttft_ms, "Goodput: TTFT objective")->check(CLI::PositiveNumber);
  cmd->add_option("--slo-itl-ms", f->slo_itl_ms, "Goodput: per-request mean ITL (TPOT) objective")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--timeout", f->timeout, "Per-request timeout, s")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--out", f->out, "Folder for report.json and PNG plots");
  cmd->add_flag("--no-plots", f->no_plots, "Skip the PNG plots");
  addCompare(cmd, exit_code);
  cmd->callback([cmd, f, &exit_code] {
    if (cmd->got_subcommand("compare")) return;
    f->requests_given = cmd->count("--requests") > 0;
    f->concurrency_given = cmd->count("--concurrency") > 0;
    exit_code = runBenchCommand(*f);
  });
}

}  // namespace turbine::app
