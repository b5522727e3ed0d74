// Caller side of the gRPC request plane: GrpcRequestPlane::connect and its WorkerClient.
#include <chrono>
#include <condition_variable>
#include <optional>
#include <unordered_map>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "runtime/grpc_convert.h"
#include "runtime/grpc_request_plane.h"
#include "turbine.grpc.pb.h"

namespace turbine::runtime {
namespace {

std::chrono::system_clock::time_point after(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

class GenerateCall;

// The calls in flight of one client, by request id (abort() looks them up).
struct CallRegistry {
  std::mutex mu;
  std::unordered_map<std::string, GenerateCall*> calls;
};

// Admit/refuse handshake between generate() and the call's reactions.
struct Admission {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> result;
  bool abandoned = false;  // generate() gave up waiting: deliver nothing
};

// One Generate stream; deletes itself when the call is done.
class GenerateCall final : public grpc::ClientReadReactor<rpc::GenerateChunk> {
 public:
  GenerateCall(std::shared_ptr<CallRegistry> registry, std::shared_ptr<grpc::Channel> channel,
               std::string endpoint, std::string request_id, ChunkCallback on_chunk)
      : registry_(std::move(registry)), channel_(std::move(channel)), endpoint_(std::move(endpoint)),
        request_id_(std::move(request_id)), on_chunk_(std::move(on_chunk)),
        admission_(std::make_shared<Admission>()) {}

  std::shared_ptr<Admission> start(rpc::Worker::Stub* stub, const rpc::GenerateRequest& request, int deadline_ms) {
    request_ = request;
    if (deadline_ms > 0) ctx_.set_deadline(after(deadline_ms));
    std::shared_ptr<Admission> admission = admission_;  // `this` may be gone once the call starts
    stub->async()->Generate(&ctx_, &request_, this);
    StartRead(&chunk_);
    StartCall();
    return admission;
  }

  // Under registry->mu (so the call is alive): cancel, the final chunk says kAbort.
  void cancelLocked() {
    aborted_ = true;
    ctx_.TryCancel();
  }

  void OnReadInitialMetadataDone(bool ok) override {
    const auto& md = ctx_.GetServerInitialMetadata();
    if (ok && md.find("turbine-admitted") != md.end()) settle(Status::ok());
    // Otherwise a refusal: OnDone carries its status.
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // end of stream: OnDone follows
    // The worker writes only after admitting, and this reaction may run before
    // OnReadInitialMetadataDone: a chunk is itself the admission.
    settle(Status::ok());
    GenerateChunk chunk = grpc_convert::fromProto(chunk_);
    if (chunk.finish != FinishReason::kNone) final_delivered_ = true;
    if (deliverable()) on_chunk_(std::move(chunk));
    StartRead(&chunk_);
  }

  void OnDone(const grpc::Status& s) override {
    Status status = grpc_convert::fromGrpc(s, "worker " + endpoint_);
    const bool was_admitted = !settle(status.isOk() ? unavailable("worker " + endpoint_ + ": call ended before admission") : status);
    if (was_admitted && !final_delivered_ && deliverable()) {
      GenerateChunk last;
      if (aborted_) {
        last.finish = FinishReason::kAbort;
      } else {
        last.finish = FinishReason::kError;
        last.error = status.isOk() ? unavailable("worker " + endpoint_ + ": stream ended without a final chunk") : status;
      }
      on_chunk_(std::move(last));
    }
    {
      std::lock_guard<std::mutex> lock(registry_->mu);
      auto it = registry_->calls.find(request_id_);
      if (it != registry_->calls.end() && it->second == this) registry_->calls.erase(it);
    }
    delete this;
  }

 private:
  // Sets the admission result once; returns true when this call set it (false: already set).
  bool settle(Status status) {
    std::lock_guard<std::mutex> lock(admission_->mu);
    if (admission_->result) return false;
    admission_->result = std::move(status);
    admission_->cv.notify_all();
    return true;
  }
  bool deliverable() {
    std::lock_guard<std::mutex> lock(admission_->mu);
    return admission_->result && admission_->result->isOk() && !admission_->abandoned;
  }

  std::shared_ptr<CallRegistry> registry_;
  std::shared_ptr<grpc::Channel> channel_;  // keeps the connection for the call's life
  std::string endpoint_;
  std::string request_id_;
  ChunkCallback on_chunk_;
  std::shared_ptr<Admission> admission_;
  grpc::ClientContext ctx_;
  rpc::GenerateRequest request_;
  rpc::GenerateChunk chunk_;
  bool final_delivered_ = false;
  std::atomic<bool> aborted_{false};
};

class GrpcWorkerClient final : public WorkerClient {
 public:
  GrpcWorkerClient(std::string endpoint, std::shared_ptr<grpc::Channel> channel, GrpcRequestPlaneOptions options)
      : endpoint_(std::move(endpoint)), channel_(std::move(channel)), stub_(rpc::Worker::NewStub(channel_)),
        options_(options), registry_(std::make_shared<CallRegistry>()) {}

  Status generate(GenerateRequest request, ChunkCallback on_chunk) override {
    const std::string id = request.request_id;
    auto* call = new GenerateCall(registry_, channel_, endpoint_, id, std::move(on_chunk));
    {
      std::lock_guard<std::mutex> lock(registry_->mu);
      registry_->calls[id] = call;
    }
    std::shared_ptr<Admission> admission =
        call->start(stub_.get(), grpc_convert::toProto(request), options_.generate_deadline_ms);
    std::unique_lock<std::mutex> lock(admission->mu);
    if (admission->cv.wait_for(lock, std::chrono::milliseconds(options_.admission_timeout_ms),
                               [&] { return admission->result.has_value(); })) {
      return *admission->result;
    }
    admission->abandoned = true;
    lock.unlock();
    cancel(id);
    return Status(StatusCode::kDeadlineExceeded, "worker " + endpoint_ + ": no admission within " +
                                                     std::to_string(options_.admission_timeout_ms) + " ms");
  }

  void abort(const std::string& request_id) override {
    {
      std::lock_guard<std::mutex> lock(registry_->mu);
      if (!registry_->calls.count(request_id)) return;  // unknown or finished
    }
    // Tell the worker (its final chunk kAbort streams back with usage); cancel if it cannot be told.
    struct Pending {
      grpc::ClientContext ctx;
      rpc::AbortRequest request;
      rpc::AbortReply reply;
    };
    auto* pending = new Pending;
    pending->ctx.set_deadline(after(options_.unary_deadline_ms));
    pending->request.set_request_id(request_id);
    std::weak_ptr<CallRegistry> registry = registry_;
    stub_->async()->Abort(&pending->ctx, &pending->request, &pending->reply,
                          [pending, registry, request_id](grpc::Status s) {
                            delete pending;
                            if (s.ok()) return;
                            if (auto r = registry.lock()) cancelIn(*r, request_id);
                          });
  }

  Status health() override {
    grpc::ClientContext ctx;
    ctx.set_deadline(after(options_.unary_deadline_ms));
    rpc::HealthRequest request;
    rpc::HealthReply reply;
    return grpc_convert::fromGrpc(stub_->Health(&ctx, request, &reply), "worker " + endpoint_);
  }

 private:
  static void cancelIn(CallRegistry& registry, const std::string& request_id) {
    std::lock_guard<std::mutex> lock(registry.mu);
    auto it = registry.calls.find(request_id);
    if (it != registry.calls.end()) it->second->cancelLocked();
  }
  void cancel(const std::string& request_id) { cancelIn(*registry_, request_id); }

  std::string endpoint_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<rpc::Worker::Stub> stub_;
  GrpcRequestPlaneOptions options_;
  std::shared_ptr<CallRegistry> registry_;
};

}  // namespace

Result<std::shared_ptr<WorkerClient>> GrpcRequestPlane::connect(const std::string& endpoint) {
  if (endpoint.empty()) return invalidArgument("request plane: connect() to an empty endpoint");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options_.max_message_bytes);
  args.SetMaxSendMessageSize(options_.max_message_bytes);
  auto channel = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  return std::shared_ptr<WorkerClient>(std::make_shared<GrpcWorkerClient>(endpoint, std::move(channel), options_));
}

}  // namespace turbine::runtime
