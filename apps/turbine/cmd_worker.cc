// turbine worker: one engine in a fleet (issue 5 §2). It serves the request plane over gRPC at
// --host:--port, publishes its KV events and load metrics over ZeroMQ, and registers its record
// (DESIGN.md §3.5, plus the served model name and the model path, where frontends read the
// tokenizer and chat template) in etcd under a lease it keeps alive; a worker that dies vanishes
// from routing within the lease TTL.
// --engine real runs the CPU model; --engine mock runs the serving engine over the timing model
// (no weights are read; --mock-profile, --mock-speedup, --num-kv-blocks).
// SIGINT / SIGTERM: deregister (frontends stop routing here), finish the admitted requests, exit 0.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "commands.h"
#include "engine/engine.h"
#include "mocker/paced_runner.h"
#include "mocker/timing_model.h"
#include "model/model_loader.h"
#include "model/tokenizer.h"
#include "process_util.h"
#include "runtime/etcd_discovery.h"
#include "runtime/grpc_request_plane.h"
#include "runtime/zmq_event_plane.h"
#include "runtime/zmq_publisher.h"
#include "worker/engine_metrics.h"
#include "worker/event_relay.h"
#include "worker/load_publisher.h"
#include "worker/upstream_client.h"
#include "worker/worker.h"

namespace turbine::app {
namespace {

struct WorkerArgs {
  std::string model;
  std::string served_model_name;
  std::string etcd = "http://127.0.0.1:2379";
  std::string namespace_name = "default";
  std::string engine = "real";
  std::string host = "127.0.0.1";
  int port = 0;
  int event_port = 0;
  uint64_t worker_id = 0;
  int lease_ttl_s = 10;
  int threads = 0;
  std::string kv_cache_memory;
  KvTierFlags kv_tier_flags;
  std::string kv_cache_dtype = "auto";
  int32_t max_model_len = 0;
  int32_t block_size = 16;
  int max_num_seqs = 256;
  // --engine mock
  std::string mock_profile;
  double mock_speedup = 1.0;
  int32_t num_kv_blocks = 1024;
  // --engine upstream
  std::string upstream;
  std::string upstream_model;
  std::string upstream_api = "openai";
  std::string kv_events;
  int upstream_metrics_ms = 100;
  // disaggregated serving
  std::string role = "agg";
  int transfer_port = 0;
};

void logLine(const std::string& line) { app::logLine("worker", line); }

// A random id below 2^53, so that JSON readers with doubles (JavaScript) keep it exact.
uint64_t randomWorkerId() {
  std::random_device rd;
  const uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return std::max<uint64_t>(1, v & ((uint64_t{1} << 53) - 1));
}

Result<std::unique_ptr<engine::ModelRunner>> makeRunner(const WorkerArgs& args, const model::ModelInfo& info) {
  if (args.engine == "mock") {
    mocker::PacedRunnerOptions o;
    if (!args.mock_profile.empty()) {
      TURBINE_ASSIGN_OR_RETURN(o.profile, mocker::loadTimingProfile(args.mock_profile));
    }
    o.profile.speedup *= args.mock_speedup;
    o.block_size = args.block_size;
    o.num_blocks = args.num_kv_blocks;
    o.max_model_len = args.max_model_len;
    // The frontend tokenizes with the model's tokenizer: every id it sends must be valid here.
    TURBINE_ASSIGN_OR_RETURN(auto tokenizer, model::Tokenizer::load(info.path));
    o.vocab_size = tokenizer->vocabSize();
    TURBINE_ASSIGN_OR_RETURN(auto runner, mocker::PacedMockRunner::create(o));
    return std::unique_ptr<engine::ModelRunner>(std::move(runner));
  }
  size_t kv_bytes = 0;
  if (!args.kv_cache_memory.empty()) {
    TURBINE_ASSIGN_OR_RETURN(kv_bytes, parseBytes(args.kv_cache_memory, "--kv-cache-memory"));
  }
  TURBINE_ASSIGN_OR_RETURN(model::ModelWeights w, model::loadModel(info.path));
  auto weights = std::make_shared<const model::ModelWeights>(std::move(w));
  CpuRunnerOptions ro;
  ro.threads = args.threads > 0 ? args.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ro.block_size = args.block_size;
  ro.kv_cache_bytes = kv_bytes;
  ro.max_model_len = args.max_model_len;
  ro.kv_cache_dtype = args.kv_cache_dtype;
  return makeCpuRunner(weights, ro);
}

// The planes a fleet worker runs on; destroyed after the worker (declared first).
struct FleetPlanes {
  runtime::GrpcRequestPlane requests;
  std::unique_ptr<runtime::EtcdDiscovery> discovery;
  std::unique_ptr<runtime::ZmqEventPlane> events;
};

std::string absolutePath(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.string();  // frontends run elsewhere: no relative paths
}

// The worker's event plane: its publisher on --host (--event-port, or a free port) with a replay
// socket.
Result<std::unique_ptr<runtime::ZmqEventPlane>> makeEventPlane(const WorkerArgs& args) {
  runtime::ZmqEventPlaneOptions z;
  z.publisher.bind = "tcp://" + args.host + ":" + (args.event_port > 0 ? std::to_string(args.event_port) : "*");
  z.publisher.replay_bind = "tcp://" + args.host + ":*";
  return runtime::ZmqEventPlane::create(z);
}

// --engine upstream: the record, the request plane (UpstreamClient), the load reports of what it
// has in flight, and the engine's KV events relayed (EventRelay) on the worker's own endpoint.
Status runUpstreamWorker(WorkerArgs args, const model::ModelInfo& info) {
  if (args.upstream.empty()) return invalidArgument("--engine upstream needs --upstream URL");
  if (args.max_model_len <= 0) {
    return invalidArgument("--engine upstream needs --max-model-len (the upstream engine's)");
  }
  if (!args.kv_events.empty()) {
    TURBINE_RETURN_IF_ERROR(runtime::parseEventEndpoint(args.kv_events).status().withPrefix("--kv-events: "));
  }
  if (args.worker_id == 0) args.worker_id = randomWorkerId();
  int port = args.port;
  if (port == 0) {
    TURBINE_ASSIGN_OR_RETURN(port, pickFreePort(args.host));
  }
  worker::UpstreamOptions uo;
  uo.url = args.upstream;
  uo.model = args.upstream_model.empty()
                 ? (args.served_model_name.empty() ? info.model_id : args.served_model_name)
                 : args.upstream_model;
  uo.max_model_len = args.max_model_len;
  uo.max_in_flight = args.max_num_seqs;
  uo.block_size = args.block_size;
  uo.api = args.upstream_api == "sglang" ? worker::UpstreamApi::kSglang : worker::UpstreamApi::kOpenAI;
  TURBINE_ASSIGN_OR_RETURN(auto client, worker::UpstreamClient::create(uo));
  if (Status h = client->health(); !h.isOk()) {
    logLine("warning: " + h.message() + " (serving anyway; requests fail until it answers)");
  }

  const sigset_t signals = blockStopSignals();  // before any thread starts
  runtime::GrpcRequestPlane requests;
  runtime::EtcdDiscoveryOptions d;
  d.endpoint = args.etcd;
  d.namespace_name = args.namespace_name;
  d.lease_ttl_s = args.lease_ttl_s;
  TURBINE_ASSIGN_OR_RETURN(auto discovery, runtime::EtcdDiscovery::create(d));
  TURBINE_ASSIGN_OR_RETURN(auto events, makeEventPlane(args));
  std::unique_ptr<worker::EventRelay> relay;
  if (!args.kv_events.empty()) {
    TURBINE_ASSIGN_OR_RETURN(relay, worker::EventRelay::start(events.get(), args.kv_events,
                                                              {args.worker_id, info.model_id, args.block_size}));
  }
  // The engine's own gauges (its queue, its pool), where its /metrics has them; else, and for
  // what they lack, what goes through this worker.
  std::unique_ptr<worker::EngineMetricsPoller> engine_metrics;
  const auto metrics_interval = std::chrono::milliseconds(args.upstream_metrics_ms);
  std::atomic<bool> stopping{false};  // the last report counts only this worker's (none)
  if (args.upstream_metrics_ms > 0) {
    engine_metrics = std::make_unique<worker::EngineMetricsPoller>(
        [&client] { return client->metrics(); }, uo.api, args.block_size, metrics_interval,
        [](bool ok, const std::string& message) {
          logLine(ok ? message
                     : "warning: " + message + " (load reports count only the requests through this worker)");
        });
  }
  worker::LoadPublisher load(events.get(), [&] {
    std::optional<worker::EngineMetricsPoller::Reading> engine;
    if (engine_metrics && !stopping.load()) engine = engine_metrics->latest(3 * metrics_interval);
    kv::LoadMetrics m = worker::upstreamLoadReport(client->load(), args.num_kv_blocks, engine);
    m.worker_id = args.worker_id;
    m.ts_ms = worker::LoadPublisher::nowUnixMs();
    return m;
  });
  client->setOnChange([&load] { load.markChanged(); });
  if (engine_metrics) engine_metrics->start();
  load.start();

  runtime::WorkerRecord rec;
  rec.worker_id = args.worker_id;
  rec.endpoint = args.host + ":" + std::to_string(port);
  rec.event_endpoint = events->endpoint();
  rec.model_id = info.model_id;
  rec.block_size = args.block_size;
  rec.kv_blocks_total = args.num_kv_blocks;
  rec.max_model_len = args.max_model_len;
  rec.served_model_name = args.served_model_name.empty() ? info.model_id : args.served_model_name;
  rec.model_path = absolutePath(info.path);
  TURBINE_RETURN_IF_ERROR(requests.serve(rec.endpoint, client));
  if (Status st = discovery->registerWorker(rec); !st.isOk()) {
    requests.stopServing(rec.endpoint);
    client->shutdown();
    load.stop(false);
    return st;
  }
  logLine("worker " + std::to_string(rec.worker_id) + " (upstream engine " + args.upstream + ", " + args.upstream_api + " API, model '" + uo.model +
          "') serves model '" + rec.served_model_name + "' (model_id " + rec.model_id + "): " +
          std::to_string(rec.kv_blocks_total) + " KV blocks of " + std::to_string(rec.block_size) +
          " tokens, max_model_len " + std::to_string(rec.max_model_len));
  logLine("registered in etcd " + args.etcd + " as " + discovery->prefix() + std::to_string(rec.worker_id) +
          " (lease TTL " + std::to_string(args.lease_ttl_s) + " s)");
  logLine("listening on grpc://" + rec.endpoint + ", events on " + rec.event_endpoint + " (" +
          (relay ? "the engine's KV events from " + args.kv_events + " and load"
                 : std::string("load only: route with --no-kv-events")) +
          ")");

  logLine(std::string("received ") + waitForStopSignal(signals) + ", stopping");
  (void)discovery->deregisterWorker(rec.worker_id);
  requests.stopServing(rec.endpoint);
  client->shutdown();
  stopping = true;
  if (engine_metrics) engine_metrics->stop();
  load.stop();  // the last report: nothing in flight
  relay.reset();
  events->close();
  logLine("stopped");
  return Status::ok();
}

Status runWorker(WorkerArgs args) {
  TURBINE_ASSIGN_OR_RETURN(model::ModelInfo info, model::loadModelInfo(args.model));
  if (args.engine == "upstream") return runUpstreamWorker(std::move(args), info);
  TURBINE_ASSIGN_OR_RETURN(auto runner, makeRunner(args, info));
  // The vocabulary's token bytes, for structured output.
  TURBINE_ASSIGN_OR_RETURN(auto tokenizer, model::Tokenizer::load(info.path));
  auto token_trie = engine::tokenTrieFor(*tokenizer, runner->vocabSize());
  if (args.worker_id == 0) args.worker_id = randomWorkerId();
  int port = args.port;
  if (port == 0) {
    TURBINE_ASSIGN_OR_RETURN(port, pickFreePort(args.host));
  }

  const sigset_t signals = blockStopSignals();  // before any thread starts
  FleetPlanes planes;
  runtime::EtcdDiscoveryOptions d;
  d.endpoint = args.etcd;
  d.namespace_name = args.namespace_name;
  d.lease_ttl_s = args.lease_ttl_s;
  TURBINE_ASSIGN_OR_RETURN(planes.discovery, runtime::EtcdDiscovery::create(d));
  TURBINE_ASSIGN_OR_RETURN(planes.events, makeEventPlane(args));

  engine::EngineOptions eo;
  eo.eos_token_ids = info.eos_token_ids;
  eo.max_num_seqs = args.max_num_seqs;
  eo.token_trie = std::move(token_trie);
  TURBINE_ASSIGN_OR_RETURN(eo.kv_tiers, kvTierOptions(args.kv_tier_flags));
  worker::WorkerOptions wo;
  wo.worker_id = args.worker_id;
  wo.endpoint = args.host + ":" + std::to_string(port);
  wo.event_endpoint = planes.events->endpoint();
  wo.model_id = info.model_id;
  wo.served_model_name = args.served_model_name.empty() ? info.model_id : args.served_model_name;
  wo.model_path = absolutePath(info.path);
  wo.role = args.role;
  wo.transfer_host = args.host;
  wo.transfer_port = args.transfer_port;
  TURBINE_ASSIGN_OR_RETURN(auto worker, worker::Worker::start(std::move(runner), eo, wo,
                                                              {&planes.requests, planes.discovery.get(),
                                                               planes.events.get()}));
  const auto& rec = worker->record();
  logLine("worker " + std::to_string(rec.worker_id) + " (" + args.engine + " engine, role " + rec.role +
          ") serves model '" +
          rec.served_model_name + "' (model_id " + rec.model_id + "): " + std::to_string(rec.kv_blocks_total) +
          " KV blocks of " + std::to_string(rec.block_size) + " tokens, max_model_len " +
          std::to_string(rec.max_model_len) +
          (eo.kv_tiers.host_bytes + eo.kv_tiers.disk_bytes > 0 ? "; " + describeKvTiers(eo.kv_tiers) : ""));
  logLine("registered in etcd " + args.etcd + " as " + planes.discovery->prefix() + std::to_string(rec.worker_id) +
          " (lease TTL " + std::to_string(args.lease_ttl_s) + " s)");
  logLine("listening on grpc://" + rec.endpoint + ", events on " + rec.event_endpoint +
          (rec.transfer.address.empty() ? "" : ", KV transfer on tcp://" + rec.transfer.address));

  logLine(std::string("received ") + waitForStopSignal(signals) + ", draining");
  worker->shutdown(engine::Engine::ShutdownMode::kDrain);
  const worker::Worker::TransferStats ts = worker->transferStats();
  if (ts.fetches + ts.fetch_failures + ts.blocks_served > 0) {
    logLine("KV transfer: " + std::to_string(ts.fetches) + " fetches (" + std::to_string(ts.blocks_fetched) +
            " blocks, " + std::to_string(ts.bytes_fetched) + " bytes), " + std::to_string(ts.fetch_failures) +
            " failed; " + std::to_string(ts.blocks_served) + " blocks served");
  }
  planes.events->close();
  logLine("stopped");
  return Status::ok();
}

}  // namespace

void addWorkerCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("worker", "Run one fleet worker: an engine behind gRPC, registered in etcd");
  auto args = std::make_shared<WorkerArgs>();
  cmd->add_option("--model", args->model, "HF model folder or .gguf file (the tokenizer's source for --engine mock)")
      ->required();
  cmd->add_option("--served-model-name", args->served_model_name, "Model name in the API (default: the model id)");
  cmd->add_option("--etcd", args->etcd, "etcd endpoint")->capture_default_str();
  cmd->add_option("--namespace", args->namespace_name, "Fleet namespace (etcd key prefix turbine/<ns>/)")
      ->capture_default_str();
  cmd->add_option("--engine", args->engine,
                  "real: the CPU model; mock: the timing model, no weights; upstream: an OpenAI-compatible "
                  "server (vLLM, SGLang) at --upstream")
      ->check(CLI::IsMember({"real", "mock", "upstream"}))->capture_default_str();
  cmd->add_option("--host", args->host, "Address to bind (gRPC and ZeroMQ)")->capture_default_str();
  cmd->add_option("--port", args->port, "gRPC port (0: a free one; the log says which)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--event-port", args->event_port, "ZeroMQ PUB port (0: a free one)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--worker-id", args->worker_id, "Worker id (default: random)");
  cmd->add_option("--lease-ttl", args->lease_ttl_s, "etcd lease TTL in seconds")
      ->check(CLI::Range(1, 3600))->capture_default_str();
  cmd->add_option("--threads", args->threads, "Kernel threads (default: all cores)")->check(CLI::Range(0, 4096));
  cmd->add_option("--kv-cache-memory", args->kv_cache_memory, "KV cache bytes, e.g. 512MiB (real engine)");
  addKvTierOptions(cmd, args->kv_tier_flags);
  cmd->add_option("--kv-cache-dtype", args->kv_cache_dtype,
                  "KV cache element type, real engine (auto: the weights' type, f16 for q8_0)")
      ->check(CLI::IsMember(kKvCacheDtypes))->capture_default_str();
  cmd->add_option("--max-model-len", args->max_model_len, "Longest sequence (default: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--block-size", args->block_size, "Tokens per KV block")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--max-num-seqs", args->max_num_seqs, "Running sequences at most")
      ->check(CLI::Range(1, 65536))->capture_default_str();
  cmd->add_option("--mock-profile", args->mock_profile, "Timing profile JSON (--engine mock)");
  cmd->add_option("--mock-speedup", args->mock_speedup, "Run the timing model this many times faster")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--upstream", args->upstream,
                  "--engine upstream: base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000");
  cmd->add_option("--upstream-api", args->upstream_api,
                  "--engine upstream: openai (vLLM's /v1/completions with return_token_ids) or sglang "
                  "(SGLang's native /generate)")
      ->check(CLI::IsMember({"openai", "sglang"}))
      ->capture_default_str();
  cmd->add_option("--upstream-model", args->upstream_model,
                  "--engine upstream: the model name the upstream serves (default: --served-model-name)");
  cmd->add_option("--kv-events", args->kv_events,
                  "--engine upstream: the engine's KV event publisher, e.g. "
                  "'tcp://127.0.0.1:5557;replay=tcp://127.0.0.1:5558;format=vllm' (vLLM's --kv-events-config)");
  cmd->add_option("--upstream-metrics-ms", args->upstream_metrics_ms,
                  "--engine upstream: read the engine's load (queue, KV pool, token rates) from its /metrics "
                  "this often; 0: report only the requests through this worker")
      ->check(CLI::Range(0, 600000))
      ->capture_default_str();
  cmd->add_option("--num-kv-blocks", args->num_kv_blocks, "KV blocks (--engine mock; --engine upstream: the record's)")
      ->check(CLI::Range(1, 1 << 28))->capture_default_str();
  cmd->add_option("--role", args->role,
                  "agg: whole requests; prefill: prefill legs of disaggregated requests (serves its KV blocks "
                  "over TCP); decode: decode legs (fetches a prefill worker's blocks) and short requests whole")
      ->check(CLI::IsMember({"agg", "prefill", "decode"}))
      ->capture_default_str();
  cmd->add_option("--transfer-port", args->transfer_port,
                  "--role prefill: KV transfer port on --host (0: a free one; the log says which)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->callback([args, &exit_code] {
    auto tiers = kvTierOptions(args->kv_tier_flags);
    if (tiers.isOk() && args->role != "agg" && args->engine == "upstream") {
      tiers = invalidArgument("--role " + args->role + " needs --engine real or mock (it moves KV blocks)");
    }
    if (tiers.isOk() && tiers->host_bytes + tiers->disk_bytes > 0 && args->engine != "real") {
      tiers = invalidArgument("--kv-host-cache and --kv-disk-cache need --engine real");
    }
    if (!tiers.isOk()) {
      std::fprintf(stderr, "turbine worker: error: %s (see --help)\n", tiers.status().message().c_str());
      exit_code = 2;
      return;
    }
    Status st = runWorker(*args);
    exit_code = st.isOk() ? 0 : reportError("worker", st);
  });
}

}  // namespace turbine::app
