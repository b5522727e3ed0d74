#include "structured/constraint_cache.h"

namespace turbine::structured {

Result<std::shared_ptr<CompiledConstraint>> ConstraintCache::compile(const OutputConstraint& c) {
  {
    std::lock_guard lk(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (it->first.sameRule(c)) {
        lru_.splice(lru_.begin(), lru_, it);
        return lru_.front().second;
      }
    }
  }
  // Outside the lock: a large schema may take a while.
  TURBINE_ASSIGN_OR_RETURN(std::shared_ptr<const Grammar> g, compileConstraint(c));
  auto compiled = std::make_shared<CompiledConstraint>();
  compiled->grammar = std::move(g);
  std::lock_guard lk(mu_);
  lru_.emplace_front(OutputConstraint{c.kind, c.spec, 0}, compiled);
  if (lru_.size() > capacity_) lru_.pop_back();
  return compiled;
}

}  // namespace turbine::structured
