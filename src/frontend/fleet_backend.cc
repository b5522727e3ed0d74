#include "frontend/fleet_backend.h"

#include <cstdio>
#include <utility>


namespace turbine::frontend {

namespace {

std::string servedName(const runtime::WorkerRecord& r) {
  return r.served_model_name.empty() ? r.model_id : r.served_model_name;
}

}  // namespace

FleetBackend::FleetBackend(FleetBackendOptions options, BackendPlanes planes)
    : options_(std::move(options)), planes_(planes) {}

Result<std::shared_ptr<FleetBackend>> FleetBackend::create(FleetBackendOptions options, BackendPlanes planes) {
  if (!planes.requests || !planes.discovery || !planes.events) {
    return invalidArgument("fleet backend: a request, discovery and event plane are all required");
  }
  if (!options.load_assets) return invalidArgument("fleet backend: no asset loader");
  TURBINE_RETURN_IF_ERROR(router::makeRouter(options.router).status());  // the policy is valid
  std::shared_ptr<FleetBackend> b(new FleetBackend(std::move(options), planes));
  b->watch_ = planes.discovery->watch([raw = b.get()](const runtime::DiscoveryEvent& e) { raw->onDiscovery(e); });
  return b;
}

FleetBackend::~FleetBackend() {
  planes_.discovery->unwatch(watch_);
  std::map<std::string, std::shared_ptr<Model>> models;
  {
    std::lock_guard<std::mutex> lock(mu_);
    models.swap(models_);
  }
  models.clear();  // each EngineBackend unsubscribes from the event plane
}

void FleetBackend::log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

std::shared_ptr<FleetBackend::Model> FleetBackend::modelFor(const runtime::WorkerRecord& rec) {
  const std::string name = servedName(rec);
  if (auto m = find(name)) return m;
  const std::string path = options_.model_path.empty() ? rec.model_path : options_.model_path;
  if (path.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.insert("\n" + name).second) {
      log("model '" + name + "': worker " + std::to_string(rec.worker_id) +
          " registers no model_path and no --model was given: not served");
    }
    return nullptr;
  }
  auto assets = options_.load_assets(path);
  if (!assets.isOk()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.insert(path).second) log("model '" + name + "': " + assets.status().message() + ": not served");
    return nullptr;
  }
  auto router = router::makeRouter(options_.router);
  if (!router.isOk()) return nullptr;
  auto m = std::make_shared<Model>();
  m->name = name;
  m->model_id = rec.model_id;
  m->router = std::shared_ptr<router::Router>(std::move(router).value());
  EngineBackendOptions bo;
  bo.served_model_name = name;
  bo.model_id = rec.model_id;
  bo.bos_token = assets->info.bos_token;
  bo.eos_token = assets->info.eos_token;
  bo.created = options_.created;
  bo.max_local_prefill_tokens = options_.max_local_prefill_tokens;
  bo.prefill_router = options_.router;
  auto backend = EngineBackend::create(bo, assets->tokenizer, assets->chat_template, m->router,
                                       {planes_.requests, &m->discovery, planes_.events});
  if (!backend.isOk()) {
    log("model '" + name + "': " + backend.status().message() + ": not served");
    return nullptr;
  }
  m->backend = std::move(backend).value();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = models_.emplace(name, m);
    if (!inserted) return it->second;
  }
  log("model '" + name + "' (model_id " + rec.model_id + ", tokenizer and template from " + path +
      ") is served from now on");
  return m;
}

void FleetBackend::onDiscovery(const runtime::DiscoveryEvent& e) {
  const runtime::WorkerRecord& rec = e.record;
  if (e.kind == runtime::DiscoveryEvent::Kind::kRemoved) {
    if (auto m = find(servedName(rec))) m->discovery.deregisterWorker(rec.worker_id);
  } else if (auto m = modelFor(rec)) {
    if (m->model_id != rec.model_id) {
      log("worker " + std::to_string(rec.worker_id) + " serves '" + servedName(rec) + "' with model_id " +
          rec.model_id + ", but that name has model_id " + m->model_id + ": ignored");
    } else {
      (void)m->discovery.registerWorker(rec);  // the record came from a registry: it has an endpoint
    }
  }
  if (options_.on_worker) options_.on_worker(e);
}

std::shared_ptr<FleetBackend::Model> FleetBackend::find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

Result<std::shared_ptr<EngineBackend>> FleetBackend::backendOf(const std::string& name) const {
  auto m = find(name);
  if (!m || m->backend->numWorkers() == 0) {
    return notFound("The model '" + name + "' does not exist or no worker serves it now");
  }
  return m->backend;
}

std::vector<ModelCard> FleetBackend::models() const {
  std::vector<std::shared_ptr<Model>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, m] : models_) all.push_back(m);
  }
  std::vector<ModelCard> cards;
  for (const auto& m : all) {
    if (m->backend->numWorkers() == 0) continue;
    for (auto& card : m->backend->models()) cards.push_back(std::move(card));
  }
  return cards;
}

size_t FleetBackend::numWorkers(const std::string& model) const {
  auto m = find(model);
  return m ? m->backend->numWorkers() : 0;
}

Result<std::string> FleetBackend::renderChat(const std::string& model, const std::vector<ChatMessage>& messages,
                                             const ChatTemplateArgs& args) {
  TURBINE_ASSIGN_OR_RETURN(auto b, backendOf(model));
  return b->renderChat(model, messages, args);
}

Result<std::vector<int32_t>> FleetBackend::tokenize(const std::string& model, const std::string& text,
                                                    bool add_special_tokens) {
  TURBINE_ASSIGN_OR_RETURN(auto b, backendOf(model));
  return b->tokenize(model, text, add_special_tokens);
}

Result<std::string> FleetBackend::detokenize(const std::string& model, const std::vector<int32_t>& ids) {
  TURBINE_ASSIGN_OR_RETURN(auto b, backendOf(model));
  return b->detokenize(model, ids);
}

std::unique_ptr<IncrementalDetokenizer> FleetBackend::newDetokenizer(const std::string& model) {
  // The model's tokenizer stays loaded while the model is known (also after its last worker left).
  auto m = find(model);
  return m ? m->backend->newDetokenizer(model) : nullptr;
}

std::string FleetBackend::tokenPiece(const std::string& model, int32_t token_id) {
  auto m = find(model);
  return m ? m->backend->tokenPiece(model, token_id) : std::string();
}

Status FleetBackend::generate(GenerateRequest request, ChunkSink sink) {
  TURBINE_ASSIGN_OR_RETURN(auto b, backendOf(request.model));
  const std::string id = request.request_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!request_model_.emplace(id, request.model).second) {
      return invalidArgument("request id '" + id + "' is already running");
    }
  }
  auto wrapped = [this, id, sink = std::move(sink)](GenerationChunk chunk) {
    if (chunk.finish != FinishReason::kNone) {
      std::lock_guard<std::mutex> lock(mu_);
      request_model_.erase(id);
    }
    sink(std::move(chunk));
  };
  Status st = b->generate(std::move(request), std::move(wrapped));
  if (!st.isOk()) {
    std::lock_guard<std::mutex> lock(mu_);
    request_model_.erase(id);
  }
  return st;
}

void FleetBackend::abort(const std::string& request_id) {
  std::shared_ptr<Model> m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = request_model_.find(request_id);
    if (it == request_model_.end()) return;
    auto mi = models_.find(it->second);
    if (mi != models_.end()) m = mi->second;
  }
  if (m) m->backend->abort(request_id);
}

Status FleetBackend::health() {
  std::vector<std::shared_ptr<Model>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, m] : models_) all.push_back(m);
  }
  for (const auto& m : all) {
    if (m->backend->health().isOk()) return Status::ok();
  }
  return unavailable("no worker is registered and healthy yet");
}

BackendStats FleetBackend::stats() {
  std::vector<std::shared_ptr<Model>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, m] : models_) all.push_back(m);
  }
  BackendStats s;
  int64_t prompt = 0, cached = 0;
  std::string extra;
  for (const auto& m : all) {
    BackendStats one = m->backend->stats();
    s.running += one.running;
    s.waiting += one.waiting;
    s.kv_blocks_total += one.kv_blocks_total;
    s.kv_blocks_used += one.kv_blocks_used;
    s.kv_host_blocks_total += one.kv_host_blocks_total;
    s.kv_host_blocks_used += one.kv_host_blocks_used;
    s.kv_disk_blocks_total += one.kv_disk_blocks_total;
    s.kv_disk_blocks_used += one.kv_disk_blocks_used;
    const auto [p, c] = m->backend->promptAndCachedTokens();
    prompt += p;
    cached += c;
    extra += one.extra_metrics;
  }
  s.prefix_cache_hit_rate = prompt > 0 ? static_cast<double>(cached) / static_cast<double>(prompt) : 0.0;
  s.extra_metrics = fleetMetrics() + extra;
  if (options_.extra_metrics) s.extra_metrics += options_.extra_metrics();
  return s;
}

std::string FleetBackend::fleetMetrics() const {
  std::vector<std::shared_ptr<Model>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, m] : models_) all.push_back(m);
  }
  std::string out = "# TYPE turbine_fleet_workers gauge\n";
  for (const auto& m : all) {
    out += "turbine_fleet_workers{model=\"" + prometheusLabel(m->name) + "\"} " +
           std::to_string(m->backend->numWorkers()) + "\n";
  }
  out += "# TYPE turbine_fleet_prefill_workers gauge\n";
  for (const auto& m : all) {
    out += "turbine_fleet_prefill_workers{model=\"" + prometheusLabel(m->name) + "\"} " +
           std::to_string(m->backend->numPrefillWorkers()) + "\n";
  }
  return out;
}

}  // namespace turbine::frontend
