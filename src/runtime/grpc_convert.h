// Conversions between the request plane's structs (request_plane.h) and the messages of
// proto/turbine.proto, and between turbine::Status and grpc::Status (codes map one to one by
// meaning: InvalidArgument <-> INVALID_ARGUMENT, Unavailable <-> UNAVAILABLE, ...).
// Used only inside src/runtime's gRPC request plane. Thread safety: pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"
#include "runtime/request_plane.h"
#include "turbine.pb.h"

namespace turbine::runtime::grpc_convert {

rpc::GenerateRequest toProto(const GenerateRequest& request);
GenerateRequest fromProto(const rpc::GenerateRequest& request);

rpc::GenerateChunk toProto(const GenerateChunk& chunk);
GenerateChunk fromProto(const rpc::GenerateChunk& chunk);

grpc::Status toGrpc(const Status& status);
// `context` prefixes the message ("worker 127.0.0.1:5000: ...").
Status fromGrpc(const grpc::Status& status, const std::string& context);

}  // namespace turbine::runtime::grpc_convert
