#include "planner/connector.h"

#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace turbine::planner {

namespace {

constexpr WorkerRole kRoles[] = {WorkerRole::kAgg, WorkerRole::kPrefill, WorkerRole::kDecode};

const std::string& commandFor(const LocalConnectorOptions& o, WorkerRole role) {
  return role == WorkerRole::kAgg ? o.agg_command : role == WorkerRole::kPrefill ? o.prefill_command : o.decode_command;
}

// The `turbine planner` flag that gives the role's command.
const char* commandFlag(WorkerRole role) {
  return role == WorkerRole::kAgg ? "--worker-command" : role == WorkerRole::kPrefill ? "--prefill-command" : "--decode-command";
}

}  // namespace

Status LogConnector::apply(const Replicas& target) {
  last_ = target;
  return Status::ok();
}

EtcdConnector::EtcdConnector(runtime::EtcdClient client, std::string key)
    : client_(std::move(client)), key_(std::move(key)) {}

std::string EtcdConnector::keyFor(const std::string& ns, const std::string& model) {
  return "turbine/" + ns + "/planner/" + model;
}

Status EtcdConnector::apply(const Replicas& target) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
  const nlohmann::json j = {{"agg", target.agg}, {"prefill", target.prefill}, {"decode", target.decode},
                            {"ts_ms", ms}};
  return client_.put(key_, j.dump());
}

LocalConnector::LocalConnector(LocalConnectorOptions options) : options_(std::move(options)) {}

LocalConnector::~LocalConnector() { shutdown(); }

void LocalConnector::reap() {
  const auto now = std::chrono::steady_clock::now();
  const auto grace = std::chrono::duration<double>(options_.stop_timeout_s);
  std::erase_if(children_, [&](Child& c) {
    int status = 0;
    const pid_t r = waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid || (r < 0 && errno == ECHILD)) return true;  // exited (or not ours any more)
    if (c.stopping && now - c.stop_at > grace) kill(c.pid, SIGKILL);
    return false;
  });
}

Replicas LocalConnector::running() {
  reap();
  Replicas r;
  for (const Child& c : children_) {
    if (c.stopping) continue;
    r.of(c.role) += 1;
  }
  return r;
}

int32_t LocalConnector::stopping() {
  reap();
  return static_cast<int32_t>(std::count_if(children_.begin(), children_.end(), [](const Child& c) { return c.stopping; }));
}

std::vector<pid_t> LocalConnector::runningPids() const {
  std::vector<pid_t> out;
  for (const Child& c : children_) {
    if (!c.stopping) out.push_back(c.pid);
  }
  return out;
}

Status LocalConnector::scale(WorkerRole role, int32_t want) {
  int32_t have = 0;
  for (const Child& c : children_) have += !c.stopping && c.role == role ? 1 : 0;
  if (want > 0 && commandFor(options_, role).empty()) {
    return invalidArgument("the plan wants " + std::string(workerRoleName(role)) + " workers but no command starts them (" +
                           commandFlag(role) + ")");
  }
  for (; have < want; ++have) {
    const std::string script = "exec " + commandFor(options_, role);
    const pid_t pid = fork();
    if (pid < 0) return unavailable(std::string("cannot start a worker: fork: ") + std::strerror(errno));
    if (pid == 0) {
      setpgid(0, 0);  // a Ctrl-C meant for the planner does not hit its workers; it stops them
      sigset_t none;  // the planner waits for its stop signals blocked; a worker starts clean
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    children_.push_back(Child{pid, role, {}, false});
  }
  // Newest first: the one that has served least (and cached least).
  for (auto it = children_.rbegin(); it != children_.rend() && have > want; ++it) {
    if (it->stopping || it->role != role) continue;
    kill(it->pid, SIGTERM);
    it->stopping = true;
    it->stop_at = std::chrono::steady_clock::now();
    --have;
  }
  return Status::ok();
}

Status LocalConnector::apply(const Replicas& target) {
  reap();
  for (WorkerRole role : kRoles) TURBINE_RETURN_IF_ERROR(scale(role, target.of(role)));
  return Status::ok();
}

void LocalConnector::shutdown() {
  for (Child& c : children_) {
    if (!c.stopping) {
      kill(c.pid, SIGTERM);
      c.stopping = true;
      c.stop_at = std::chrono::steady_clock::now();
    }
  }
  while (!children_.empty()) {  // reap() turns SIGTERM into SIGKILL after the grace period
    reap();
    if (!children_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace turbine::planner
