// Connectors: how a plan reaches the fleet. The planner decides how many workers of each role to
// run; a connector makes it so, or tells whoever can:
//   LogConnector      only remembers the plan (the planner logs it): a dry run.
//   EtcdConnector     writes it to etcd, key turbine/<namespace>/planner/<model>, JSON
//                     {"agg":N,"prefill":N,"decode":N,"ts_ms":T}, for an outside orchestrator
//                     (a Kubernetes operator, a script) to act on.
//   LocalConnector    runs the workers itself on this machine: one child process per worker,
//                     from a shell command per role (`turbine worker ... --role R`). More: it
//                     starts them; fewer: it sends the newest SIGTERM (a worker deregisters,
//                     finishes what it holds and exits) and SIGKILL after stop_timeout_s; a child
//                     that exits on its own no longer counts, so the next plan replaces it. It
//                     counts only the workers it started.
// Thread safety: not thread-safe; the planner's loop owns its connector.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "planner/sla_planner.h"
#include "runtime/etcd_client.h"

namespace turbine::planner {

class Connector {
 public:
  virtual ~Connector() = default;
  // Moves the fleet towards `target` (a role this connector cannot run is an error).
  virtual Status apply(const Replicas& target) = 0;
  // Stops what the connector started, if anything (the planner is exiting).
  virtual void shutdown() {}
};

class LogConnector : public Connector {
 public:
  Status apply(const Replicas& target) override;
  const Replicas& last() const { return last_; }

 private:
  Replicas last_;
};

class EtcdConnector : public Connector {
 public:
  EtcdConnector(runtime::EtcdClient client, std::string key);
  Status apply(const Replicas& target) override;
  static std::string keyFor(const std::string& ns, const std::string& model);

 private:
  runtime::EtcdClient client_;
  std::string key_;
};

struct LocalConnectorOptions {
  // `/bin/sh -c "exec <command>"` per worker of the role; empty: the role cannot be run.
  std::string agg_command, prefill_command, decode_command;
  double stop_timeout_s = 30;  // SIGTERM to SIGKILL
};

class LocalConnector : public Connector {
 public:
  explicit LocalConnector(LocalConnectorOptions options);
  ~LocalConnector() override;
  Status apply(const Replicas& target) override;
  void shutdown() override;
  // Running workers (started, not asked to stop, not exited) per role, after reaping.
  Replicas running();
  int32_t stopping();  // asked to stop, not yet exited
  std::vector<pid_t> runningPids() const;  // oldest first

 private:
  struct Child {
    pid_t pid;
    WorkerRole role;
    std::chrono::steady_clock::time_point stop_at;  // SIGTERM time; epoch while running
    bool stopping = false;
  };
  void reap();
  Status scale(WorkerRole role, int32_t want);

  LocalConnectorOptions options_;
  std::vector<Child> children_;  // oldest first
};

}  // namespace turbine::planner
