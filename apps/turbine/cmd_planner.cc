// turbine planner: the SLA planner (src/planner) in front of a running fleet. Every adjustment
// interval it scrapes the frontend's /metrics, turns the difference into an observation (demand,
// lengths, TTFT, ITL, queue, workers serving), plans the workers each role needs to meet the
// targets, and hands the plan to a connector: log (dry run), etcd (a key for an orchestrator) or
// local (it runs `turbine worker` processes itself). SIGINT / SIGTERM: the local connector's
// workers are stopped (drained), then it exits 0.
#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "common/http_fetch.h"
#include "common/http_url.h"
#include "mocker/timing_model.h"
#include "planner/connector.h"
#include "planner/fleet_observer.h"
#include "planner/sla_planner.h"
#include "planner_flags.h"
#include "process_util.h"

namespace turbine::app {
namespace {

struct PlannerArgs {
  std::string frontend, model, profile;
  double time_scale = 1.0;
  std::string connector = "log";
  std::string etcd, ns = "default";
  std::string worker_command, prefill_command, decode_command;
  double stop_timeout_s = 30;
  int scrape_timeout_ms = 5000;
  PlannerFlags plan;
};

void log(const std::string& line) { logLine("planner", line); }

Result<std::unique_ptr<planner::Connector>> makeConnector(const PlannerArgs& a, planner::FleetMode mode) {
  if (a.connector == "log") return std::unique_ptr<planner::Connector>(new planner::LogConnector());
  if (a.connector == "etcd") {
    if (a.etcd.empty()) return invalidArgument("--connector etcd needs --etcd");
    if (a.model.empty()) return invalidArgument("--connector etcd needs --model (the key names it)");
    TURBINE_ASSIGN_OR_RETURN(auto client, runtime::EtcdClient::create(a.etcd));
    return std::unique_ptr<planner::Connector>(
        new planner::EtcdConnector(std::move(client), planner::EtcdConnector::keyFor(a.ns, a.model)));
  }
  planner::LocalConnectorOptions o;
  o.agg_command = a.worker_command;
  o.prefill_command = a.prefill_command;
  o.decode_command = a.decode_command;
  o.stop_timeout_s = a.stop_timeout_s;
  if (mode == planner::FleetMode::kAgg && o.agg_command.empty()) {
    return invalidArgument("--connector local needs --worker-command");
  }
  if (mode == planner::FleetMode::kDisagg && (o.prefill_command.empty() || o.decode_command.empty())) {
    return invalidArgument("--connector local --mode disagg needs --prefill-command and --decode-command");
  }
  return std::unique_ptr<planner::Connector>(new planner::LocalConnector(o));
}

std::string counts(const planner::Replicas& r, planner::FleetMode mode) {
  return mode == planner::FleetMode::kAgg
             ? "agg " + std::to_string(r.agg)
             : "prefill " + std::to_string(r.prefill) + " decode " + std::to_string(r.decode);
}

Status runPlanner(const PlannerArgs& a) {
  mocker::TimingProfile profile;
  if (!a.profile.empty()) {
    TURBINE_ASSIGN_OR_RETURN(profile, mocker::loadTimingProfile(a.profile));
  }
  profile.speedup *= a.time_scale;
  TURBINE_ASSIGN_OR_RETURN(planner::PlannerOptions po, plannerOptions(a.plan, profile));
  TURBINE_ASSIGN_OR_RETURN(HttpUrl url, parseHttpUrl(a.frontend, "--frontend"));
  TURBINE_ASSIGN_OR_RETURN(auto connector, makeConnector(a, po.mode));
  const sigset_t signals = blockStopSignals();
  planner::SlaPlanner sla(po);
  auto scrape = [&]() -> Result<planner::FrontendSnapshot> {
    TURBINE_ASSIGN_OR_RETURN(HttpResponse res, httpFetch(url.host, url.port, url.base_path + "/metrics", "",
                                                         a.scrape_timeout_ms));
    if (res.status != 200) return unavailable("frontend /metrics: HTTP " + std::to_string(res.status));
    return planner::parseFrontendMetrics(res.body, a.model);
  };
  // The frontend must answer before anything starts: a wrong URL is an error, not a quiet loop.
  TURBINE_ASSIGN_OR_RETURN(planner::FrontendSnapshot before, scrape());
  planner::Replicas initial;
  (po.mode == planner::FleetMode::kAgg ? initial.agg : initial.prefill) = po.min_workers;
  if (po.mode == planner::FleetMode::kDisagg) initial.decode = po.min_workers;
  TURBINE_RETURN_IF_ERROR(connector->apply(initial));
  log("planning " + std::string(planner::fleetModeName(po.mode)) + " workers for mean TTFT " +
      std::to_string(po.targets.ttft_ms) + " ms, ITL " + std::to_string(po.targets.itl_ms) + " ms every " +
      std::to_string(a.plan.interval_s) + " s; connector " + a.connector + "; started with " +
      counts(initial, po.mode));
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    if (const char* sig = waitForStopSignalFor(signals, a.plan.interval_s)) {
      log(std::string("received ") + sig + ", stopping");
      break;
    }
    Result<planner::FrontendSnapshot> now = scrape();
    const auto t = std::chrono::steady_clock::now();
    if (!now) {
      log("skipping this interval: " + now.status().message());
      continue;
    }
    const double interval_s = std::chrono::duration<double>(t - last).count();
    const planner::Observation ob = planner::observationBetween(before, *now, interval_s, po.mode);
    before = *now;
    last = t;
    const planner::Plan plan = sla.plan(ob);
    log("served " + counts(ob.serving, po.mode) + ", " + std::to_string(ob.requests / interval_s) +
        " req/s, waiting " + std::to_string(static_cast<int64_t>(ob.waiting)) + " | " + plan.summary());
    Status st = connector->apply(plan.replicas);
    if (!st) log("connector: " + st.message());
  }
  connector->shutdown();
  log("stopped");
  return Status::ok();
}

}  // namespace

void addPlannerCommand(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<PlannerArgs>();
  auto* cmd = app.add_subcommand(
      "planner", "Size a fleet to latency targets: scrape the frontend, plan workers per role, apply the plan");
  cmd->add_option("--frontend", a->frontend, "The fleet's turbine frontend, http://HOST:PORT")->required();
  cmd->add_option("--model", a->model, "Plan for this model's workers (default: every model's)");
  cmd->add_option("--profile", a->profile, "The workers' timing profile JSON (src/mocker/timing_model.h)");
  cmd->add_option("--time-scale", a->time_scale, "The workers run this many times faster than the profile")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--connector", a->connector,
                  "log: only log the plan; etcd: write it to turbine/<ns>/planner/<model>; local: run "
                  "the workers here")
      ->check(CLI::IsMember({"log", "etcd", "local"}))->capture_default_str();
  cmd->add_option("--etcd", a->etcd, "etcd endpoint (--connector etcd)");
  cmd->add_option("--namespace", a->ns, "Fleet namespace (--connector etcd)")->capture_default_str();
  cmd->add_option("--worker-command", a->worker_command, "--connector local: shell command starting one agg worker");
  cmd->add_option("--prefill-command", a->prefill_command, "--connector local: one prefill worker");
  cmd->add_option("--decode-command", a->decode_command, "--connector local: one decode worker");
  cmd->add_option("--stop-timeout", a->stop_timeout_s, "Seconds a stopping worker may drain before SIGKILL")
      ->check(CLI::Range(0.0, 3600.0))->capture_default_str();
  cmd->add_option("--scrape-timeout-ms", a->scrape_timeout_ms, "Deadline of one /metrics scrape")
      ->check(CLI::Range(10, 600000))->capture_default_str();
  addPlannerFlags(cmd, a->plan, /*with_mode=*/true);
  cmd->callback([a, &exit_code] {
    Status st = runPlanner(*a);
    exit_code = st ? 0 : reportError("planner", st);
  });
}

}  // namespace turbine::app
