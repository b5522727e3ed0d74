// turbine frontend: the OpenAI server of a fleet (issue 5 §2). It watches the workers registered
// in etcd under the namespace, subscribes to each one's ZeroMQ KV events and load metrics, and
// routes every request with the chosen policy to a worker over gRPC. A model appears in
// /v1/models when its first worker registers (its tokenizer and chat template are read from the
// model path the worker registers, or from --model); several frontends may run at once, each with
// its own index fed by the same events.
// SIGINT / SIGTERM: stop accepting, finish in-flight requests up to --shutdown-grace, exit 0.
#include <chrono>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "commands.h"
#include "frontend/fleet_backend.h"
#include "frontend/openai_server.h"
#include "process_util.h"
#include "router/router.h"
#include "runtime/etcd_discovery.h"
#include "runtime/grpc_request_plane.h"
#include "runtime/zmq_event_plane.h"

namespace turbine::app {
namespace {

struct FrontendArgs {
  std::string etcd = "http://127.0.0.1:2379";
  std::string namespace_name = "default";
  std::string router = "kv";
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  OutputParserFlags output_parsers;
  router::RouterOptions routing;  // the policy comes from `router`
  int shutdown_grace_s = 10;
  int io_threads = 2;
  int lease_ttl_s = 10;
  std::vector<uint64_t> drop_kv_seqs;  // tests: kv frames with these seqs are "lost on the wire"
  int32_t max_local_prefill_tokens = 512;
};

void logLine(const std::string& line) { app::logLine("frontend", line); }

std::string subscriberMetrics(runtime::ZmqEventPlane& plane) {
  const runtime::ZmqSubscriberStats s = plane.subscriberStats();
  std::ostringstream out;
  out << "# TYPE turbine_event_plane_gaps_total counter\nturbine_event_plane_gaps_total " << s.gaps << "\n"
      << "# TYPE turbine_event_plane_replays_total counter\nturbine_event_plane_replays_total " << s.replays << "\n"
      << "# TYPE turbine_event_plane_snapshots_total counter\nturbine_event_plane_snapshots_total " << s.snapshots
      << "\n# TYPE turbine_event_plane_delivered_total counter\nturbine_event_plane_delivered_total " << s.delivered
      << "\n# TYPE turbine_event_plane_decode_errors_total counter\nturbine_event_plane_decode_errors_total "
      << s.decode_errors
      << "\n# TYPE turbine_event_plane_vllm_blocks_dropped_total counter\nturbine_event_plane_vllm_blocks_dropped_total "
      << s.vllm_blocks_dropped << "\n";
  return out.str();
}

// Declared in the order they must be destroyed last-to-first: the server stops first.
struct FrontendStack {
  runtime::GrpcRequestPlane requests;
  std::unique_ptr<runtime::EtcdDiscovery> discovery;
  std::unique_ptr<runtime::ZmqEventPlane> events;
  std::shared_ptr<frontend::FleetBackend> backend;
  std::unique_ptr<frontend::OpenAiServer> server;

  ~FrontendStack() {
    if (server) server->shutdown();
    server.reset();
    backend.reset();
    if (events) events->close();
  }
};

Result<std::shared_ptr<frontend::FleetBackend>> makeBackend(const FrontendArgs& args, FrontendStack& stack) {
  frontend::FleetBackendOptions fo;
  fo.router = args.routing;
  fo.router.policy = args.router;
  fo.max_local_prefill_tokens = args.max_local_prefill_tokens;
  fo.model_path = args.model;
  fo.created = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
  runtime::ZmqEventPlane* events = stack.events.get();
  fo.on_worker = [events](const runtime::DiscoveryEvent& e) {
    const auto& r = e.record;
    if (e.kind == runtime::DiscoveryEvent::Kind::kRemoved) {
      if (!r.event_endpoint.empty()) events->removePublisher(r.event_endpoint);
      logLine("worker " + std::to_string(r.worker_id) + " left (" + r.endpoint + ")");
      return;
    }
    logLine("worker " + std::to_string(r.worker_id) + " joined: model '" +
            (r.served_model_name.empty() ? r.model_id : r.served_model_name) + "' at " + r.endpoint);
    if (r.event_endpoint.empty()) return;
    runtime::PublisherInfo info;
    info.worker = r.worker_id;
    info.model_id = r.model_id;
    info.block_size = r.block_size;
    Status st = events->addPublisher(r.event_endpoint, info);
    if (!st.isOk()) logLine("worker " + std::to_string(r.worker_id) + ": events: " + st.message());
  };
  fo.extra_metrics = [events] { return subscriberMetrics(*events); };
  fo.log = [](const std::string& line) { logLine(line); };
  return frontend::FleetBackend::create(std::move(fo), {&stack.requests, stack.discovery.get(), events});
}

Status runFrontend(const FrontendArgs& args) {
  const sigset_t signals = blockStopSignals();  // before any thread starts
  FrontendStack stack;
  runtime::EtcdDiscoveryOptions d;
  d.endpoint = args.etcd;
  d.namespace_name = args.namespace_name;
  d.lease_ttl_s = args.lease_ttl_s;
  TURBINE_ASSIGN_OR_RETURN(stack.discovery, runtime::EtcdDiscovery::create(d));
  runtime::ZmqEventPlaneOptions z;
  z.publish = false;
  if (!args.drop_kv_seqs.empty()) {
    auto drop = std::make_shared<std::set<uint64_t>>(args.drop_kv_seqs.begin(), args.drop_kv_seqs.end());
    z.subscriber.drop_for_test = [drop](runtime::Topic topic, uint64_t seq) {
      return topic == runtime::Topic::kKv && drop->count(seq) > 0;
    };
  }
  TURBINE_ASSIGN_OR_RETURN(stack.events, runtime::ZmqEventPlane::create(z));
  TURBINE_ASSIGN_OR_RETURN(stack.backend, makeBackend(args, stack));

  frontend::OpenAiServerOptions so;
  so.http.host = args.host;
  so.http.port = static_cast<uint16_t>(args.port);
  so.api_key = args.api_key;
  TURBINE_ASSIGN_OR_RETURN(so.tool_call_format, toolCallFormat(args.output_parsers));
  so.reasoning_format = reasoningFormat(args.output_parsers);
  so.shutdown_grace = std::chrono::seconds(args.shutdown_grace_s);
  so.http.io_threads = args.io_threads;
  stack.server = std::make_unique<frontend::OpenAiServer>(so, stack.backend);
  TURBINE_RETURN_IF_ERROR(stack.server->start());
  logLine("watching etcd " + args.etcd + " at " + stack.discovery->prefix() + ", router " + args.router +
          (args.routing.use_kv_events ? "" : " (approximate: no KV events)"));
  logLine("listening on http://" + args.host + ":" + std::to_string(stack.server->port()));

  logLine(std::string("received ") + waitForStopSignal(signals) + ", shutting down");
  stack.server->shutdown();  // in-flight requests get the grace period
  logLine("stopped");
  return Status::ok();
}

}  // namespace

void addFrontendCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("frontend", "Serve the OpenAI API in front of the workers registered in etcd");
  auto args = std::make_shared<FrontendArgs>();
  cmd->add_option("--etcd", args->etcd, "etcd endpoint")->capture_default_str();
  cmd->add_option("--namespace", args->namespace_name, "Fleet namespace (etcd key prefix turbine/<ns>/)")
      ->capture_default_str();
  cmd->add_option("--router", args->router, "kv | least-loaded | round-robin | random")
      ->check(CLI::IsMember({"kv", "least-loaded", "round-robin", "random"}))->capture_default_str();
  cmd->add_option("--model", args->model,
                  "Read tokenizer and chat template here instead of the path the workers register");
  cmd->add_option("--host", args->host, "Address to bind")->capture_default_str();
  cmd->add_option("--port", args->port, "Port to bind (0: pick a free one; the log says which)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--max-local-prefill-tokens", args->max_local_prefill_tokens,
                  "Disaggregated serving: a decode worker prefills up to this many uncached prompt tokens "
                  "itself; longer prompts go to a prefill worker first (0: never)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--api-key", args->api_key, "Require 'Authorization: Bearer KEY'");
  addOutputParserOptions(cmd, args->output_parsers);
  addRouterOptions(cmd, args->routing);
  cmd->add_option("--io-threads", args->io_threads, "HTTP I/O threads (each its own event loop)")
      ->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--shutdown-grace", args->shutdown_grace_s, "Seconds in-flight requests get on shutdown")
      ->check(CLI::Range(0, 3600))->capture_default_str();
  cmd->add_option("--drop-kv-events-for-test", args->drop_kv_seqs,
                  "Tests: act as if KV event frames with these seq numbers were lost")
      ->group("");  // hidden
  cmd->callback([args, &exit_code] {
    Status st = runFrontend(*args);
    exit_code = st.isOk() ? 0 : reportError("frontend", st);
  });
}

}  // namespace turbine::app
