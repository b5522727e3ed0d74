// ConstraintCache: compiled constraints by kind and spec (resume_tokens aside), the `capacity`
// most recently used kept, each with the token-mask cache its requests share. The engine keeps
// one (a schema used by many requests is compiled, and pays for its masks, once); the frontend
// keeps one to check requests without compiling the same schema again for each.
// Thread safety: every method is safe from any thread; a CompiledConstraint's Grammar is
// immutable and its MaskCache locks itself.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <utility>

#include "common/status.h"
#include "structured/constraint.h"
#include "structured/matcher.h"

namespace turbine::structured {

struct CompiledConstraint {
  std::shared_ptr<const Grammar> grammar;
  MaskCache masks;  // used by matchers over one vocabulary (the engine's)
};

class ConstraintCache {
 public:
  explicit ConstraintCache(size_t capacity) : capacity_(capacity) {}

  // InvalidArgument naming what is wrong with the constraint (failures are not cached).
  Result<std::shared_ptr<CompiledConstraint>> compile(const OutputConstraint& c);

 private:
  size_t capacity_;
  std::mutex mu_;
  std::list<std::pair<OutputConstraint, std::shared_ptr<CompiledConstraint>>> lru_;  // newest first
};

}  // namespace turbine::structured
