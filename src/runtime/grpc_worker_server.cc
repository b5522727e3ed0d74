// Worker side of the gRPC request plane: GrpcRequestPlane::start / serve / stopServing.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <optional>
#include <utility>

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include "runtime/grpc_convert.h"
#include "runtime/grpc_request_plane.h"
#include "turbine.grpc.pb.h"

namespace turbine::runtime {
namespace {

using namespace std::chrono_literals;

// Chunks from the handler's threads to the RPC's thread. Shared: the handler may still call
// after the RPC returned (a late chunk is dropped).
class ChunkQueue {
 public:
  void push(GenerateChunk&& chunk) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(chunk));
    }
    cv_.notify_one();
  }
  std::optional<GenerateChunk> popFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return std::nullopt;
    GenerateChunk c = std::move(queue_.front());
    queue_.pop_front();
    return c;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerateChunk> queue_;
};

class WorkerService final : public rpc::Worker::Service {
 public:
  explicit WorkerService(std::shared_ptr<WorkerClient> handler) : handler_(std::move(handler)) {}

  grpc::Status Generate(grpc::ServerContext* ctx, const rpc::GenerateRequest* proto,
                        grpc::ServerWriter<rpc::GenerateChunk>* writer) override {
    if (proto->has_constraint() && !structured::kindFromName(proto->constraint().kind())) {
      return grpc_convert::toGrpc(invalidArgument("unknown structured output kind '" +
                                                  proto->constraint().kind() + "'"));
    }
    auto queue = std::make_shared<ChunkQueue>();
    GenerateRequest request = grpc_convert::fromProto(*proto);
    const std::string id = request.request_id;
    Status admitted = handler_->generate(std::move(request),
                                         [queue](GenerateChunk&& c) { queue->push(std::move(c)); });
    if (!admitted.isOk()) return grpc_convert::toGrpc(admitted);
    ctx->AddInitialMetadata("turbine-admitted", "1");
    writer->SendInitialMetadata();
    for (;;) {
      if (ctx->IsCancelled()) return abortCall(id, *queue);
      std::optional<GenerateChunk> chunk = queue->popFor(20ms);
      if (!chunk) continue;
      const bool last = chunk->finish != FinishReason::kNone;
      if (!writer->Write(grpc_convert::toProto(*chunk))) return abortCall(id, *queue);
      if (last) return grpc::Status::OK;
    }
  }

  grpc::Status Abort(grpc::ServerContext*, const rpc::AbortRequest* request, rpc::AbortReply*) override {
    handler_->abort(request->request_id());
    return grpc::Status::OK;
  }

  grpc::Status Health(grpc::ServerContext*, const rpc::HealthRequest*, rpc::HealthReply*) override {
    return grpc_convert::toGrpc(handler_->health());
  }

 private:
  // The caller is gone: abort the request and wait (briefly) for its final chunk, so the engine
  // has released its blocks when the call ends.
  grpc::Status abortCall(const std::string& id, ChunkQueue& queue) {
    handler_->abort(id);
    const auto until = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < until) {
      std::optional<GenerateChunk> chunk = queue.popFor(20ms);
      if (chunk && chunk->finish != FinishReason::kNone) break;
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "request " + id + " cancelled by the caller");
  }

  std::shared_ptr<WorkerClient> handler_;
};

}  // namespace

struct GrpcRequestPlane::Served {
  std::unique_ptr<WorkerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string requested;  // the address passed to start()
};

GrpcRequestPlane::GrpcRequestPlane(GrpcRequestPlaneOptions options) : options_(options) {
  // gRPC is initialized once for the process and never shut down: gRPC 1.51 races when the last
  // object of one generation shuts the library down while the next one initializes it again.
  // Likewise the callback API's shared completion queue is pinned by one channel that lives for
  // the process (it is created by a first callback call): 1.51 races when the last channel using
  // it goes away while the next one starts.
  static std::once_flag once;
  std::call_once(once, [] {
    grpc_init();
    auto* channel = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
    auto* stub = rpc::Worker::NewStub(*channel).release();
    auto* ctx = new grpc::ClientContext;
    ctx->set_deadline(std::chrono::system_clock::now());
    auto* request = new rpc::HealthRequest;
    auto* reply = new rpc::HealthReply;
    stub->async()->Health(ctx, request, reply, [](grpc::Status) {});  // all intentionally leaked
  });
}

GrpcRequestPlane::~GrpcRequestPlane() {
  std::map<std::string, std::unique_ptr<Served>> served;
  {
    std::lock_guard<std::mutex> lock(mu_);
    served.swap(served_);
  }
  for (auto& [endpoint, s] : served) {
    s->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.shutdown_grace_ms));
  }
}

Result<std::string> GrpcRequestPlane::start(const std::string& address, std::shared_ptr<WorkerClient> handler) {
  if (!handler) return invalidArgument("request plane: serve(" + address + ") without a handler");
  const size_t colon = address.rfind(':');
  if (address.empty() || colon == std::string::npos) {
    return invalidArgument("request plane: endpoint '" + address + "' is not host:port");
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [endpoint, s] : served_) {
    if (endpoint == address || s->requested == address) {
      return Status(StatusCode::kAlreadyExists, "request plane: already serving " + address);
    }
  }
  auto served = std::make_unique<Served>();
  served->service = std::make_unique<WorkerService>(std::move(handler));
  served->requested = address;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  builder.RegisterService(served->service.get());
  served->server = builder.BuildAndStart();
  if (!served->server || port == 0) {
    return unavailable("request plane: cannot serve at '" + address + "' (address in use or invalid)");
  }
  std::string endpoint = address.substr(0, colon) + ":" + std::to_string(port);
  served_.emplace(endpoint, std::move(served));
  return endpoint;
}

Status GrpcRequestPlane::serve(const std::string& endpoint, std::shared_ptr<WorkerClient> handler) {
  Result<std::string> started = start(endpoint, std::move(handler));
  return started.status();
}

void GrpcRequestPlane::stopServing(const std::string& endpoint) {
  std::unique_ptr<Served> served;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = served_.begin(); it != served_.end(); ++it) {
      if (it->first == endpoint || it->second->requested == endpoint) {
        served = std::move(it->second);
        served_.erase(it);
        break;
      }
    }
  }
  if (!served) return;
  served->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.shutdown_grace_ms));
  served->server->Wait();
}

}  // namespace turbine::runtime
