// FleetBackend: the ServingBackend of `turbine frontend` (issue 5 §2) — every model that the
// fleet's workers serve, discovered, each behind its own EngineBackend and router.
//   - It watches discovery (etcd in a fleet). The first worker of a served model name (the
//     record's served_model_name, else its model_id) makes the model appear: its tokenizer and
//     chat template are loaded from the record's model_path (or options.model_path), and an
//     EngineBackend with a fresh router from options.router is created for it. The model is
//     listed in /v1/models while at least one of its workers is registered.
//   - Each model's EngineBackend sees only its own workers, through a private in-process
//     Discovery that mirrors the fleet's records of that model; it shares the fleet's request
//     plane (gRPC clients) and event plane (KV events and load metrics).
//   - options.on_worker runs after each discovery event was applied (the router knows the worker
//     before it runs): `turbine frontend` subscribes to the worker's event endpoint there, so the
//     snapshot that the subscription starts with finds the worker in the router.
// Requests for a model that is not (or no longer) served are NotFound.
// Thread safety: all methods are thread-safe. The planes must outlive the backend.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "frontend/backend.h"
#include "frontend/engine_backend.h"
#include "frontend/serving_assets.h"
#include "router/router.h"
#include "runtime/discovery.h"
#include "runtime/in_process_discovery.h"

namespace turbine::frontend {

struct FleetBackendOptions {
  router::RouterOptions router;  // one router per model, made from these (and one for its prefill workers)
  // Disaggregated serving: EngineBackendOptions::max_local_prefill_tokens of every model.
  int32_t max_local_prefill_tokens = 512;
  std::string model_path;        // "" = each record's model_path
  int64_t created = 0;           // /v1/models "created" (unix seconds)
  std::function<void(const runtime::DiscoveryEvent&)> on_worker;
  // More Prometheus lines for /metrics (e.g. the event plane's subscriber counters).
  std::function<std::string()> extra_metrics;
  // Where a model's assets come from (tests replace it).
  std::function<Result<ServingAssets>(const std::string& path)> load_assets = loadServingAssets;
  // One line per notable fleet change (a model appears, a model's assets fail to load).
  std::function<void(const std::string&)> log;
};

class FleetBackend : public ServingBackend {
 public:
  // InvalidArgument when a plane is missing or the router options are invalid.
  static Result<std::shared_ptr<FleetBackend>> create(FleetBackendOptions options, BackendPlanes planes);
  ~FleetBackend() override;

  std::vector<ModelCard> models() const override;
  Result<std::string> renderChat(const std::string& model, const std::vector<ChatMessage>& messages,
                                 const ChatTemplateArgs& args) override;
  Result<std::vector<int32_t>> tokenize(const std::string& model, const std::string& text,
                                        bool add_special_tokens) override;
  Result<std::string> detokenize(const std::string& model, const std::vector<int32_t>& ids) override;
  std::unique_ptr<IncrementalDetokenizer> newDetokenizer(const std::string& model) override;
  std::string tokenPiece(const std::string& model, int32_t token_id) override;
  Status generate(GenerateRequest request, ChunkSink sink) override;
  void abort(const std::string& request_id) override;
  Status health() override;
  BackendStats stats() override;

  // Routable workers of `model` now (0 when unknown).
  size_t numWorkers(const std::string& model) const;

 private:
  struct Model {
    std::string name;
    std::string model_id;
    runtime::InProcessDiscovery discovery;  // this model's records (outlives `backend`)
    std::shared_ptr<router::Router> router;
    std::shared_ptr<EngineBackend> backend;
  };

  FleetBackend(FleetBackendOptions options, BackendPlanes planes);
  void onDiscovery(const runtime::DiscoveryEvent& event);
  // The model a record belongs to, created on its first worker; null when it cannot be loaded.
  std::shared_ptr<Model> modelFor(const runtime::WorkerRecord& record);
  std::shared_ptr<Model> find(const std::string& name) const;
  Result<std::shared_ptr<EngineBackend>> backendOf(const std::string& name) const;
  std::string fleetMetrics() const;  // workers per model
  void log(const std::string& line) const;

  FleetBackendOptions options_;
  BackendPlanes planes_;
  runtime::WatchId watch_ = 0;

  mutable std::mutex mu_;  // guards models_, request_model_, failed_
  std::map<std::string, std::shared_ptr<Model>> models_;
  std::map<std::string, std::string> request_model_;  // request id -> model name, while it runs
  std::set<std::string> failed_;                      // model paths that did not load (logged once)
};

}  // namespace turbine::frontend
