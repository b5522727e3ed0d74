// bench_client_bench: the `turbine bench` client's own overhead at many concurrent streams.
// Runs the bench client against the in-process stub server (its own thread), whose tokens leave
// on a fixed schedule (first after --ttft-ms, then one every --itl-ms). Whatever the client
// measures above that schedule is overhead (client + stub + kernel; an upper bound on the
// client's). Reports the event-loop thread's CPU share and CPU time per token, and the measured
// TTFT/ITL against the schedule.
//   bench_client_bench [--concurrency 1000] [--requests 3000] [--output 100] [--ttft-ms 50]
//                      [--itl-ms 20] [--input 64] [--stub-threads 1]
//   bench_client_bench --serve SECONDS [--ttft-ms ..] [--itl-ms ..] [--fail-every N]: only run the
//   stub server (prints its URL) for that long, to try `turbine bench` against it by hand.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "bench/report.h"
#include "bench/runner.h"
#include "bench/stub_server.h"

using namespace turbine::bench;

int main(int argc, char** argv) {
  int32_t concurrency = 1000, requests = 3000, output = 100, input = 64, stub_threads = 1;
  double ttft_ms = 50, itl_ms = 20, serve_s = 0;
  int32_t fail_every = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--concurrency") concurrency = std::atoi(v);
    else if (k == "--requests") requests = std::atoi(v);
    else if (k == "--output") output = std::atoi(v);
    else if (k == "--input") input = std::atoi(v);
    else if (k == "--stub-threads") stub_threads = std::atoi(v);
    else if (k == "--ttft-ms") ttft_ms = std::atof(v);
    else if (k == "--itl-ms") itl_ms = std::atof(v);
    else if (k == "--serve") serve_s = std::atof(v);
    else if (k == "--fail-every") fail_every = std::atoi(v);
    else {
      std::fprintf(stderr, "bench_client_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  raiseOpenFileLimit();
  StubServerOptions so;
  so.ttft_ms = ttft_ms;
  so.itl_ms = itl_ms;
  so.threads = stub_threads;
  so.fail_every = fail_every;
  auto stub = StubServer::start(so);
  if (!stub.isOk()) {
    std::fprintf(stderr, "bench_client_bench: %s\n", stub.status().message().c_str());
    return 1;
  }
  if (serve_s > 0) {
    std::printf("%s\n", (*stub)->url().c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(serve_s));
    return 0;
  }
  SyntheticOptions wo;
  wo.requests = requests;
  wo.input = {LengthDist::Kind::kFixed, static_cast<double>(input), 0};
  wo.output = {LengthDist::Kind::kFixed, static_cast<double>(output), 0};
  auto workload = makeSyntheticWorkload(wo);
  PromptOptions po;
  po.model = "stub";
  PromptRenderer renderer(po);
  RunnerOptions ro;
  ro.url = (*stub)->url();
  ro.max_concurrency = concurrency;
  auto out = runBench(ro, *workload, renderer);
  if (!out.isOk()) {
    std::fprintf(stderr, "bench_client_bench: %s\n", out.status().message().c_str());
    return 1;
  }
  Aggregates a = aggregate(out->results, out->duration_s, {});
  int64_t chunks = 0;
  for (const auto& r : out->results) chunks += r.chunks;
  const double ideal_e2e_ms = ttft_ms + (output - 1) * itl_ms;
  std::printf("streams in flight (max)      %d (target %d), connections opened %lld\n",
              out->max_in_flight, concurrency, static_cast<long long>(out->connections_opened));
  std::printf("requests ok / failed         %lld / %lld in %.2f s\n",
              static_cast<long long>(a.requests_ok), static_cast<long long>(a.requests_failed),
              out->duration_s);
  std::printf("tokens received              %lld (%.0f tokens/s)\n", static_cast<long long>(chunks),
              static_cast<double>(chunks) / out->duration_s);
  std::printf("event-loop CPU               %.2f s = %.1f%% of one core; %.2f us per token\n",
              out->loop_cpu_s, 100.0 * out->loop_cpu_s / out->duration_s,
              1e6 * out->loop_cpu_s / static_cast<double>(std::max<int64_t>(1, chunks)));
  std::printf("ttft ms p50/p99/max          %.2f / %.2f / %.2f   (schedule %.2f)\n", a.ttft_ms.p50,
              a.ttft_ms.p99, a.ttft_ms.max, ttft_ms);
  std::printf("itl ms  p50/p99/max          %.2f / %.2f / %.2f   (schedule %.2f)\n", a.itl_ms.p50,
              a.itl_ms.p99, a.itl_ms.max, itl_ms);
  std::printf("e2e ms  p50/p99              %.2f / %.2f   (schedule %.2f)\n", a.e2e_ms.p50,
              a.e2e_ms.p99, ideal_e2e_ms);
  const StubStats ss = (*stub)->stats();
  std::printf("stub send lag ms mean/max    %.2f / %.2f   (server side, behind its schedule)\n",
              ss.send_lag_mean_ms, ss.send_lag_max_ms);
  std::printf("client loop lag ms p50/p99/max %.2f / %.2f / %.2f   (5 ms probe timer)\n",
              out->loop_lag_p50_ms, out->loop_lag_p99_ms, out->loop_lag_max_ms);
  std::printf("overhead: ttft p50 +%.2f ms, itl mean +%.3f ms, e2e p50 +%.2f ms\n",
              a.ttft_ms.p50 - ttft_ms, a.itl_ms.mean - itl_ms, a.e2e_ms.p50 - ideal_e2e_ms);
  return a.requests_failed == 0 ? 0 : 1;
}
