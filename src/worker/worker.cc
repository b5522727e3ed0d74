#include "worker/worker.h"

#include <algorithm>
#include <utility>

namespace turbine::worker {
namespace {

runtime::FinishReason toRuntimeFinish(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kNone: return runtime::FinishReason::kNone;
    case engine::FinishReason::kStop: return runtime::FinishReason::kStop;
    case engine::FinishReason::kLength: return runtime::FinishReason::kLength;
    case engine::FinishReason::kAbort: return runtime::FinishReason::kAbort;
  }
  return runtime::FinishReason::kError;
}

}  // namespace

engine::Request toEngineRequest(runtime::GenerateRequest r) {
  engine::Request out;
  out.request_id = std::move(r.request_id);
  out.token_ids = std::move(r.token_ids);
  out.n = 1;
  out.cache_salt = std::move(r.cache_salt);
  auto& s = out.sampling;
  s.temperature = r.sampling.temperature;
  s.top_p = r.sampling.top_p;
  s.top_k = r.sampling.top_k;
  s.min_p = r.sampling.min_p;
  s.seed = r.sampling.seed;
  s.repetition_penalty = r.sampling.repetition_penalty;
  s.presence_penalty = r.sampling.presence_penalty;
  s.frequency_penalty = r.sampling.frequency_penalty;
  for (const auto& [id, bias] : r.sampling.logit_bias) s.logit_bias[id] = bias;
  s.logprobs = r.sampling.logprobs >= 0;
  s.top_logprobs = std::max(0, r.sampling.logprobs);
  out.stop.max_tokens = r.stop.max_tokens;
  out.stop.stop_token_ids = std::move(r.stop.stop_token_ids);
  out.stop.ignore_eos = r.stop.ignore_eos;
  out.stop.min_tokens = r.stop.min_tokens;
  out.constraint = std::move(r.constraint);
  return out;
}

runtime::GenerateChunk fromEngineOutput(engine::Output&& o) {
  runtime::GenerateChunk c;
  c.token_ids = std::move(o.token_ids);
  c.logprobs.reserve(o.logprobs.size());
  for (auto& p : o.logprobs) {
    runtime::TokenLogprobs t;
    t.token_id = p.chosen.token;
    t.logprob = p.chosen.logprob;
    t.top.reserve(p.top.size());
    for (const auto& alt : p.top) t.top.emplace_back(alt.token, alt.logprob);
    c.logprobs.push_back(std::move(t));
  }
  c.finish = toRuntimeFinish(o.finish_reason);
  if (!o.status.isOk()) {
    c.finish = runtime::FinishReason::kError;
    c.error = std::move(o.status);
  }
  if (o.usage) {
    c.usage = runtime::Usage{o.usage->prompt_tokens, o.usage->cached_tokens, o.usage->completion_tokens};
  }
  return c;
}

Worker::Worker(WorkerOptions options, WorkerPlanes planes)
    : options_(std::move(options)),
      planes_(planes),
      load_(planes.events, [this] { return loadMetrics(); },
            LoadPublisherOptions{options_.load_interval, options_.min_load_interval}) {}

Result<std::shared_ptr<Worker>> Worker::start(std::unique_ptr<engine::ModelRunner> runner,
                                              engine::EngineOptions engine_options,
                                              WorkerOptions options, WorkerPlanes planes) {
  if (!planes.requests || !planes.discovery || !planes.events) {
    return invalidArgument("worker: a request, discovery and event plane are all required");
  }
  if (!runner) return invalidArgument("worker: no model runner");
  if (options.endpoint.empty()) options.endpoint = "worker-" + std::to_string(options.worker_id);
  engine_options.worker_id = options.worker_id;
  engine_options.model_id = options.model_id;
  std::shared_ptr<Worker> w(new Worker(options, planes));
  TURBINE_ASSIGN_OR_RETURN(w->engine_, engine::Engine::create(std::move(runner), engine_options));

  const engine::RequestLimits limits = w->engine_->limits();
  auto& rec = w->record_;
  rec.worker_id = options.worker_id;
  rec.endpoint = options.endpoint;
  rec.event_endpoint = options.event_endpoint;
  rec.served_model_name = options.served_model_name;
  rec.model_path = options.model_path;
  rec.model_id = options.model_id;
  rec.role = options.role;
  rec.block_size = limits.block_size;
  rec.kv_blocks_total = limits.num_blocks;
  rec.max_model_len = limits.max_model_len;

  runtime::EventPlane* events = planes.events;
  w->engine_->subscribeKvEvents([events](const kv::KvEventMessage& msg) {
    (void)events->publish(msg);  // Unavailable only once the plane closed: nobody listens
  });
  TURBINE_RETURN_IF_ERROR(planes.requests->serve(rec.endpoint, w));
  w->served_ = true;
  w->serving_ = true;
  w->load_.start();
  Status st = planes.discovery->registerWorker(rec);
  if (!st.isOk()) {
    w->shutdown();
    return st;
  }
  w->registered_ = true;
  return w;
}

Worker::~Worker() { shutdown(); }

Status Worker::generate(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk) {
  if (!serving_.load()) return unavailable("worker " + std::to_string(options_.worker_id) + " is shut down");
  if (!on_chunk) return invalidArgument("worker: no chunk callback");
  auto cb = [this, sink = std::move(on_chunk)](engine::Output&& out) {
    const bool last = out.finished();
    sink(fromEngineOutput(std::move(out)));
    if (last) load_.markChanged();
  };
  Status st = engine_->add(toEngineRequest(std::move(request)), std::move(cb));
  if (st.isOk()) load_.markChanged();
  return st;
}

void Worker::abort(const std::string& request_id) { engine_->abort(request_id); }

Status Worker::health() {
  if (!serving_.load()) return unavailable("worker " + std::to_string(options_.worker_id) + " is shut down");
  return Status::ok();
}

kv::LoadMetrics Worker::loadMetrics() {
  engine::EngineStats s;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    s = engine_->stats();
  }
  kv::LoadMetrics m;
  m.worker_id = options_.worker_id;
  m.role = options_.role;
  m.running = s.running;
  m.waiting = s.waiting;
  m.kv_blocks_total = s.kv_blocks_total;
  m.kv_blocks_used = s.kv_blocks_used;
  m.kv_blocks_cached_free = s.kv_blocks_cached_free;
  m.kv_host_blocks_total = static_cast<int32_t>(s.kv_host_blocks_total);
  m.kv_host_blocks_used = static_cast<int32_t>(s.kv_host_blocks_used);
  m.kv_disk_blocks_total = static_cast<int32_t>(s.kv_disk_blocks_total);
  m.kv_disk_blocks_used = static_cast<int32_t>(s.kv_disk_blocks_used);
  m.tokens_per_s_prefill = s.prefill_tokens_per_s;
  m.tokens_per_s_decode = s.decode_tokens_per_s;
  m.ts_ms = LoadPublisher::nowUnixMs();
  return m;
}

void Worker::shutdown(engine::Engine::ShutdownMode mode) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  serving_ = false;
  if (registered_) planes_.discovery->deregisterWorker(options_.worker_id);
  if (served_) planes_.requests->stopServing(record_.endpoint);
  if (engine_) engine_->shutdown(mode);
  load_.stop(/*last_report=*/engine_ != nullptr);  // routers see the worker empty
}

}  // namespace turbine::worker
