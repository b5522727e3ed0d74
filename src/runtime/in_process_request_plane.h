// InProcessRequestPlane: the embedded default's request plane. Endpoints are names in a table;
// connect() returns a client that calls the worker's handler directly, on the caller's thread
// (the worker's chunks come back on the worker's own threads, as over a network).
// After stopServing(endpoint) every client of that endpoint answers Unavailable, even clients
// connected before; a new serve() at the same endpoint is a new worker, and old clients stay
// disconnected from it.
// Thread safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "runtime/request_plane.h"

namespace turbine::runtime {

class InProcessRequestPlane : public RequestPlane {
 public:
  Status serve(const std::string& endpoint, std::shared_ptr<WorkerClient> handler) override;
  void stopServing(const std::string& endpoint) override;
  Result<std::shared_ptr<WorkerClient>> connect(const std::string& endpoint) override;

  struct Slot;  // implementation detail: one served endpoint; clients hold it, stopServing()
                // empties it

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Slot>> slots_;
};

}  // namespace turbine::runtime
