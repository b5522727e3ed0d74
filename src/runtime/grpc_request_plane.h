// GrpcRequestPlane: the fleet's request plane over gRPC (proto/turbine.proto, service Worker),
// behind the RequestPlane interface (request_plane.h). Endpoints are "host:port".
//
// Worker side: serve() runs a gRPC server that forwards Generate / Abort / Health to the
// handler. A Generate call is admitted when the handler's generate() returns OK (the server then
// sends initial metadata), refused with the handler's status otherwise. When the call is cancelled
// (the client cancels, its deadline passes, the connection drops) the server calls
// handler->abort(request_id).
// Caller side: connect() returns a WorkerClient; generate() waits for the admission (at most
// admission_timeout_ms), then chunks arrive on gRPC's threads. A call that ends without a final
// chunk (deadline, lost worker) ends with a final chunk kError carrying the status
// (DeadlineExceeded, Unavailable, ...). abort() sends Abort to the worker (its final chunk kAbort
// then streams back with usage) and cancels the call if the worker cannot be told.
// Thread safety: all methods are thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/request_plane.h"

namespace turbine::runtime {

struct GrpcRequestPlaneOptions {
  int generate_deadline_ms = 0;       // whole Generate stream; 0 = no deadline
  int admission_timeout_ms = 10'000;  // generate() waits this long for admit/refuse
  int unary_deadline_ms = 2'000;      // Abort and Health
  int shutdown_grace_ms = 1'000;      // stopServing(): in-flight calls are cancelled after it
  int max_message_bytes = 64 << 20;   // prompts of a few million tokens
};

class GrpcRequestPlane : public RequestPlane {
 public:
  explicit GrpcRequestPlane(GrpcRequestPlaneOptions options = {});
  ~GrpcRequestPlane() override;  // stops every server

  // Serves at `address` ("127.0.0.1:0": any free port) and returns the endpoint clients use
  // ("127.0.0.1:41234"). Unavailable when the address cannot be bound; AlreadyExists when
  // this plane already serves it.
  Result<std::string> start(const std::string& address, std::shared_ptr<WorkerClient> handler);

  Status serve(const std::string& endpoint, std::shared_ptr<WorkerClient> handler) override;
  void stopServing(const std::string& endpoint) override;
  // Never NotFound: gRPC connects lazily, so an unreachable worker shows up as Unavailable from
  // generate() / health(). InvalidArgument on an empty endpoint.
  Result<std::shared_ptr<WorkerClient>> connect(const std::string& endpoint) override;

  struct Served;  // implementation detail: one gRPC server and its service

 private:
  GrpcRequestPlaneOptions options_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Served>> served_;
};

}  // namespace turbine::runtime
