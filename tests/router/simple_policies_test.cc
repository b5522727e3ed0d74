// round-robin, random and least-loaded: model filtering, spreading, load accounting, makeRouter.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "router/router.h"
#include "router/simple_policies.h"

namespace turbine::router {
namespace {

std::unique_ptr<Router> make(const std::string& policy, uint64_t seed = 0) {
  RouterOptions o;
  o.policy = policy;
  o.seed = seed;
  auto r = makeRouter(o);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? std::move(r).value() : nullptr;
}

void addWorkers(Router& r, int n, const std::string& model = "m", WorkerId first = 0) {
  for (int i = 0; i < n; ++i) r.addWorker(WorkerInfo{first + static_cast<WorkerId>(i), model, "agg", 16, 100});
}

WorkerId route(Router& r, const std::string& id, const std::string& model = "m") {
  auto d = r.route(RouteRequest{id, model, {}, 10});
  EXPECT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d.isOk() ? d->overlap_blocks : -1, 0);
  return d.isOk() ? d->worker : ~WorkerId{0};
}

TEST(MakeRouter, KnowsThePolicies) {
  for (const char* p : {"round-robin", "random", "least-loaded"}) EXPECT_NE(make(p), nullptr) << p;
  auto bad = makeRouter(RouterOptions{"fastest"});
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("fastest"), std::string::npos);
  auto kv = makeRouter(RouterOptions{"kv"});
  EXPECT_EQ(kv.isOk(), hasKvRouter());
  if (!hasKvRouter()) {
    EXPECT_EQ(kv.status().code(), StatusCode::kUnimplemented);
  }
}

TEST(SimplePolicies, OnlyWorkersOfTheModelAndUnavailableWithoutAny) {
  for (const char* p : {"round-robin", "random", "least-loaded"}) {
    auto r = make(p);
    EXPECT_EQ(r->route(RouteRequest{"x", "m", {}, 1}).status().code(), StatusCode::kUnavailable) << p;
    addWorkers(*r, 2, "other", 0);
    addWorkers(*r, 2, "m", 10);
    for (int i = 0; i < 20; ++i) {
      WorkerId w = route(*r, "r" + std::to_string(i));
      EXPECT_TRUE(w == 10 || w == 11) << p << " picked " << w;
    }
    r->removeWorker(10);
    r->removeWorker(11);
    EXPECT_EQ(r->route(RouteRequest{"y", "m", {}, 1}).status().code(), StatusCode::kUnavailable) << p;
  }
}

TEST(RoundRobin, CyclesInWorkerIdOrder) {
  auto r = make("round-robin");
  addWorkers(*r, 3);
  std::vector<WorkerId> got;
  for (int i = 0; i < 6; ++i) got.push_back(route(*r, "r" + std::to_string(i)));
  EXPECT_EQ(got, (std::vector<WorkerId>{0, 1, 2, 0, 1, 2}));
}

TEST(Random, SpreadsAndIsReproducibleBySeed) {
  auto a = make("random", 7), b = make("random", 7), c = make("random", 8);
  addWorkers(*a, 4);
  addWorkers(*b, 4);
  addWorkers(*c, 4);
  std::map<WorkerId, int> counts;
  std::vector<WorkerId> sa, sb, sc;
  for (int i = 0; i < 400; ++i) {
    const std::string id = "r" + std::to_string(i);
    sa.push_back(route(*a, id));
    sb.push_back(route(*b, id));
    sc.push_back(route(*c, id));
    ++counts[sa.back()];
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  ASSERT_EQ(counts.size(), 4u);
  for (auto& [w, n] : counts) EXPECT_GT(n, 50) << "worker " << w;
}

TEST(LeastLoaded, CountsItsOwnInFlightRequests) {
  auto r = make("least-loaded");
  addWorkers(*r, 3);
  // Three requests go to three different workers; a fourth to any, since all hold one.
  std::set<WorkerId> first{route(*r, "a"), route(*r, "b"), route(*r, "c")};
  EXPECT_EQ(first.size(), 3u);
  WorkerId d = route(*r, "d");
  // Finishing the requests of the other two workers makes them the only choices.
  r->onRequestFinished("a");
  r->onRequestFinished("b");
  r->onRequestFinished("c");
  r->onRequestFinished("unknown");  // ignored
  // d's worker still has one request: the next two go elsewhere.
  WorkerId e = route(*r, "e"), f = route(*r, "f");
  EXPECT_NE(e, d);
  EXPECT_NE(f, d);
  EXPECT_NE(e, f);
}

TEST(LeastLoaded, SequentialRequestsStayOnTheLowestIdleWorker) {
  auto r = make("least-loaded");
  addWorkers(*r, 3, "m", 5);
  for (int i = 0; i < 5; ++i) {
    const std::string id = "s" + std::to_string(i);
    EXPECT_EQ(route(*r, id), 5u);  // ties: the lowest id, so its prefix cache is reused
    r->onRequestFinished(id);
  }
}

TEST(LeastLoaded, AReportOfItsOwnFinishedRequestDoesNotCountAsLoad) {
  auto r = make("least-loaded");
  addWorkers(*r, 2);
  ASSERT_EQ(route(*r, "r1"), 0u);
  kv::LoadMetrics during;  // sent while r1 ran, read after
  during.worker_id = 0;
  during.running = 1;
  r->onLoad(during);
  r->onRequestFinished("r1");
  EXPECT_EQ(route(*r, "r2"), 0u);  // r1's worker is free again, and holds its prefix
  r->onRequestFinished("r2");
  // Load that is not ours still counts.
  kv::LoadMetrics others = during;
  others.running = 3;
  r->onLoad(others);
  EXPECT_EQ(route(*r, "r3"), 1u);
}

TEST(LeastLoaded, UsesLoadReportsAndBlockUsageToBreakTies) {
  auto r = make("least-loaded");
  addWorkers(*r, 3);
  kv::LoadMetrics busy;
  busy.worker_id = 0;
  busy.running = 8;
  busy.waiting = 4;
  r->onLoad(busy);
  kv::LoadMetrics full;
  full.worker_id = 1;
  full.kv_blocks_total = 100;
  full.kv_blocks_used = 90;
  r->onLoad(full);
  kv::LoadMetrics light;
  light.worker_id = 2;
  light.kv_blocks_total = 100;
  light.kv_blocks_used = 10;
  r->onLoad(light);
  EXPECT_EQ(route(*r, "a"), 2u);  // 0 is busy; 1 and 2 idle, 2 has more free blocks
  EXPECT_EQ(route(*r, "b"), 1u);  // 2 now holds a request of ours
  // Worker 0 reports 12 sequences: it gets nothing until the others hold as many.
  for (int i = 0; i < 20; ++i) EXPECT_NE(route(*r, "x" + std::to_string(i)), 0u);
  // Removing a worker forgets its in-flight requests; finishing them later is harmless.
  r->removeWorker(2);
  r->onRequestFinished("a");
  EXPECT_EQ(route(*r, "c"), 1u);
}

}  // namespace
}  // namespace turbine::router
