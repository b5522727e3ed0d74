// The routing policies that ignore the KV cache (DESIGN.md §4 names them beside `kv`):
//   round-robin   the next worker of the model in worker-id order, cycling;
//   random        uniform over the workers of the model (seeded: options.seed);
//   least-loaded  the worker with the least load, where
//                   load(w) = own(w) + others(w)
//                   own(w)    = requests this router routed to w and that are not finished
//                   others(w) = max(0, running + waiting in w's last load report
//                                      - own(w) when that report arrived)
//                 so the router's own count takes effect at once (a finished request frees its
//                 worker before the next report says so), and reports still count the traffic
//                 of other routers; ties go to the lower KV-block usage fraction
//                 (kv_blocks_used / kv_blocks_total, from load reports), then the lowest
//                 worker id — so sequential traffic stays on one worker and reuses its prefix
//                 cache, while concurrent traffic spreads by the in-flight counts.
// None of them predicts cache overlap: RouteDecision::overlap_blocks is always 0.
// Thread safety: every method takes one internal mutex; safe from any thread.
#pragma once

#include <memory>

#include "router/router.h"

namespace turbine::router {

std::unique_ptr<Router> makeRoundRobinRouter(const RouterOptions& options);
std::unique_ptr<Router> makeRandomRouter(const RouterOptions& options);
std::unique_ptr<Router> makeLeastLoadedRouter(const RouterOptions& options);

}  // namespace turbine::router
