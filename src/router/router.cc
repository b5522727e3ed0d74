// makeRouter: the policy by name. The kv policy lives in kv_router.{h,cc} (issue 5); until that
// file exists this build answers Unimplemented for it.
#include "router/router.h"

#include "router/simple_policies.h"

#if __has_include("router/kv_router.h")
#include "router/kv_router.h"
#define TURBINE_HAVE_KV_ROUTER 1
#endif

namespace turbine::router {

Result<std::unique_ptr<Router>> makeRouter(const RouterOptions& options) {
  if (options.policy == "round-robin") return makeRoundRobinRouter(options);
  if (options.policy == "random") return makeRandomRouter(options);
  if (options.policy == "least-loaded") return makeLeastLoadedRouter(options);
  if (options.policy == "kv") {
#ifdef TURBINE_HAVE_KV_ROUTER
    return makeKvRouter(options);
#else
    return unimplemented("router: policy 'kv' is not in this build");
#endif
  }
  return invalidArgument("router: unknown policy '" + options.policy +
                         "' (expected round-robin, random, least-loaded or kv)");
}

bool hasKvRouter() {
#ifdef TURBINE_HAVE_KV_ROUTER
  return true;
#else
  return false;
#endif
}

}  // namespace turbine::router
