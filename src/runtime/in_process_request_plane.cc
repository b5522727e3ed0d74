#include "runtime/in_process_request_plane.h"

#include <utility>

namespace turbine::runtime {

struct InProcessRequestPlane::Slot {
  std::string endpoint;
  std::mutex mu;
  std::shared_ptr<WorkerClient> handler;  // null once stopped

  std::shared_ptr<WorkerClient> get() {
    std::lock_guard<std::mutex> lock(mu);
    return handler;
  }
};

namespace {

// Forwards to the slot's handler while it serves. The handler is copied out under the slot's
// lock and called without it, so a handler may take as long as it likes.
class InProcessClient : public WorkerClient {
 public:
  using Slot = InProcessRequestPlane::Slot;
  explicit InProcessClient(std::shared_ptr<Slot> slot) : slot_(std::move(slot)) {}

  Status generate(GenerateRequest request, ChunkCallback on_chunk) override {
    auto h = slot_->get();
    if (!h) return gone();
    return h->generate(std::move(request), std::move(on_chunk));
  }
  void abort(const std::string& request_id) override {
    if (auto h = slot_->get()) h->abort(request_id);
  }
  Status health() override {
    auto h = slot_->get();
    return h ? h->health() : gone();
  }

 private:
  Status gone() const { return unavailable("worker '" + slot_->endpoint + "' is not serving"); }
  std::shared_ptr<Slot> slot_;
};

}  // namespace

Status InProcessRequestPlane::serve(const std::string& endpoint,
                                    std::shared_ptr<WorkerClient> handler) {
  if (endpoint.empty()) return invalidArgument("request plane: empty endpoint");
  if (!handler) return invalidArgument("request plane: null handler for '" + endpoint + "'");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(endpoint);
  if (it != slots_.end()) {
    return Status(StatusCode::kAlreadyExists, "request plane: endpoint '" + endpoint + "' is already served");
  }
  auto slot = std::make_shared<Slot>();
  slot->endpoint = endpoint;
  slot->handler = std::move(handler);
  slots_.emplace(endpoint, std::move(slot));
  return Status::ok();
}

void InProcessRequestPlane::stopServing(const std::string& endpoint) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(endpoint);
    if (it == slots_.end()) return;
    slot = std::move(it->second);
    slots_.erase(it);
  }
  std::shared_ptr<WorkerClient> handler;
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    handler.swap(slot->handler);
  }
  // `handler` is released here, outside every lock.
}

Result<std::shared_ptr<WorkerClient>> InProcessRequestPlane::connect(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(endpoint);
  if (it == slots_.end()) return notFound("request plane: no worker serves '" + endpoint + "'");
  return std::shared_ptr<WorkerClient>(std::make_shared<InProcessClient>(it->second));
}

const char* finishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

}  // namespace turbine::runtime
