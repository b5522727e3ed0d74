#include "router/simple_policies.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace turbine::router {
namespace {

// What every simple policy tracks: the workers (by id, so iteration order is stable), their last
// load report and the requests this router routed and that are still in flight.
class SimpleRouter : public Router {
 public:
  void addWorker(const WorkerInfo& worker) override {
    std::lock_guard<std::mutex> lock(mu_);
    workers_[worker.id].info = worker;
  }

  void removeWorker(WorkerId worker) override {
    std::lock_guard<std::mutex> lock(mu_);
    workers_.erase(worker);
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      it = it->second == worker ? in_flight_.erase(it) : std::next(it);
    }
  }

  void onKvEvents(const kv::KvEventMessage&) override {}

  void onLoad(const kv::LoadMetrics& load) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = workers_.find(load.worker_id);
    if (it == workers_.end()) return;
    it->second.load = load;
    it->second.active_at_report = it->second.active;
  }

  Result<RouteDecision> route(const RouteRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<WorkerId> candidates;
    for (const auto& [id, w] : workers_) {
      if (w.info.model_id == request.model_id) candidates.push_back(id);
    }
    if (candidates.empty()) {
      return unavailable("router: no worker serves model '" + request.model_id + "'");
    }
    WorkerId chosen = pick(candidates);
    if (!request.request_id.empty()) {
      auto [it, inserted] = in_flight_.emplace(request.request_id, chosen);
      if (!inserted) {  // a retried id: move its count to the new choice
        --workers_[it->second].active;
        it->second = chosen;
      }
      ++workers_[chosen].active;
    }
    return RouteDecision{chosen, 0};
  }

  void onRequestFinished(const std::string& request_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_flight_.find(request_id);
    if (it == in_flight_.end()) return;
    auto w = workers_.find(it->second);
    if (w != workers_.end()) --w->second.active;
    in_flight_.erase(it);
  }

 protected:
  struct Worker {
    WorkerInfo info;
    kv::LoadMetrics load;
    int64_t active = 0;            // routed here by this router, not finished
    int64_t active_at_report = 0;  // `active` when the last load report arrived
  };
  // Picks one of `candidates` (non-empty, ascending ids); called with mu_ held.
  virtual WorkerId pick(const std::vector<WorkerId>& candidates) = 0;

  std::map<WorkerId, Worker> workers_;  // guarded by mu_

 private:
  std::mutex mu_;
  std::unordered_map<std::string, WorkerId> in_flight_;
};

class RoundRobinRouter : public SimpleRouter {
 protected:
  WorkerId pick(const std::vector<WorkerId>& candidates) override {
    return candidates[next_++ % candidates.size()];
  }

 private:
  uint64_t next_ = 0;
};

class RandomRouter : public SimpleRouter {
 public:
  explicit RandomRouter(uint64_t seed) : rng_(seed) {}

 protected:
  WorkerId pick(const std::vector<WorkerId>& candidates) override {
    std::uniform_int_distribution<size_t> d(0, candidates.size() - 1);
    return candidates[d(rng_)];
  }

 private:
  std::mt19937_64 rng_;
};

class LeastLoadedRouter : public SimpleRouter {
 protected:
  WorkerId pick(const std::vector<WorkerId>& candidates) override {
    // Candidates come in ascending id order and only a strictly better one replaces the best,
    // so ties go to the lowest id.
    WorkerId best = candidates.front();
    int64_t best_load = 0;
    double best_usage = 0;
    bool first = true;
    for (WorkerId id : candidates) {
      const Worker& w = workers_.at(id);
      const int64_t reported = int64_t{w.load.running} + w.load.waiting;
      const int64_t load = w.active + std::max<int64_t>(0, reported - w.active_at_report);
      const double usage = w.load.kv_blocks_total > 0
                               ? static_cast<double>(w.load.kv_blocks_used) / w.load.kv_blocks_total
                               : 0.0;
      if (first || load < best_load || (load == best_load && usage < best_usage)) {
        best = id;
        best_load = load;
        best_usage = usage;
        first = false;
      }
    }
    return best;
  }
};

}  // namespace

std::unique_ptr<Router> makeRoundRobinRouter(const RouterOptions&) {
  return std::make_unique<RoundRobinRouter>();
}

std::unique_ptr<Router> makeRandomRouter(const RouterOptions& options) {
  return std::make_unique<RandomRouter>(options.seed);
}

std::unique_ptr<Router> makeLeastLoadedRouter(const RouterOptions&) {
  return std::make_unique<LeastLoadedRouter>();
}

}  // namespace turbine::router
