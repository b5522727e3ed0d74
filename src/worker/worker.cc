#include "worker/worker.h"

#include <algorithm>
#include <future>
#include <utility>

#include "kv/block_hash.h"

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
  if (r.sampling.prompt_logprobs >= 0) s.prompt_logprobs = r.sampling.prompt_logprobs;
  out.stop.max_tokens = r.stop.max_tokens;
  out.stop.stop_token_ids = std::move(r.stop.stop_token_ids);
  out.stop.ignore_eos = r.stop.ignore_eos;
  out.stop.min_tokens = r.stop.min_tokens;
  out.constraint = std::move(r.constraint);
  return out;
}

static runtime::TokenLogprobs toRuntimeLogprobs(const engine::PositionLogprobs& p) {
  runtime::TokenLogprobs t;
  t.token_id = p.chosen.token;
  t.logprob = p.chosen.logprob;
  t.rank = p.rank;
  t.top.reserve(p.top.size());
  for (const auto& alt : p.top) t.top.emplace_back(alt.token, alt.logprob);
  return t;
}

runtime::GenerateChunk fromEngineOutput(engine::Output&& o) {
  runtime::GenerateChunk c;
  c.token_ids = std::move(o.token_ids);
  c.logprobs.reserve(o.logprobs.size());
  for (const auto& p : o.logprobs) c.logprobs.push_back(toRuntimeLogprobs(p));
  if (o.prompt_logprobs) {
    c.prompt_logprobs.emplace();
    c.prompt_logprobs->reserve(o.prompt_logprobs->size());
    for (const auto& p : *o.prompt_logprobs) c.prompt_logprobs->push_back(toRuntimeLogprobs(p));
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
  if (options.role != "agg" && options.role != "prefill" && options.role != "decode") {
    return invalidArgument("worker: role '" + options.role + "' is not one of agg, prefill, decode");
  }
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
  if (options.role == "prefill") {
    transfer::TransferServerOptions to;
    to.host = options.transfer_host;
    to.port = options.transfer_port;
    Worker* raw = w.get();
    TURBINE_ASSIGN_OR_RETURN(w->transfer_server_,
                             transfer::TransferServer::start(to, [raw](const std::vector<uint64_t>& ids) {
                               return raw->exportBlocks(ids);
                             }));
    rec.transfer = runtime::TransferInfo{"tcp", w->transfer_server_->address()};
  }
  if (options.role == "decode") {
    for (int i = 0; i < std::max(1, options.transfer_threads); ++i) {
      w->transfer_threads_.emplace_back([raw = w.get()] { raw->transferLoop(); });
    }
  }

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
  if (request.disaggregation.prefill_only) return generatePrefill(std::move(request), std::move(on_chunk));
  if (!request.disaggregation.kv_address.empty()) return generateDecode(std::move(request), std::move(on_chunk));
  return addToEngine(toEngineRequest(std::move(request)), std::move(on_chunk));
}

Status Worker::addToEngine(engine::Request request, runtime::ChunkCallback on_chunk) {
  auto cb = [this, sink = std::move(on_chunk)](engine::Output&& out) {
    const bool last = out.finished();
    sink(fromEngineOutput(std::move(out)));
    if (last) load_.markChanged();
  };
  Status st = engine_->add(std::move(request), std::move(cb));
  if (st.isOk()) load_.markChanged();
  return st;
}

Status Worker::generatePrefill(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk) {
  if (!transfer_server_) {
    return failedPrecondition("worker " + std::to_string(options_.worker_id) + " has role '" + options_.role +
                              "': prefill legs go to workers of role prefill");
  }
  // Only the KV matters: one token, and nothing that only shapes the output.
  request.stop.max_tokens = 1;
  request.stop.min_tokens = 0;
  request.sampling.logprobs = -1;
  request.sampling.prompt_logprobs = -1;
  request.constraint.reset();
  auto cb = [address = transfer_server_->address(), sink = std::move(on_chunk)](runtime::GenerateChunk&& c) {
    if (c.finish == runtime::FinishReason::kStop || c.finish == runtime::FinishReason::kLength) {
      c.kv_address = address;
    }
    sink(std::move(c));
  };
  return addToEngine(toEngineRequest(std::move(request)), std::move(cb));
}

Status Worker::generateDecode(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk) {
  if (transfer_threads_.empty()) {
    return failedPrecondition("worker " + std::to_string(options_.worker_id) + " has role '" + options_.role +
                              "': decode legs go to workers of role decode");
  }
  // What the engine would refuse is refused now, before any fetch.
  {
    const engine::Request probe = toEngineRequest(request);
    TURBINE_RETURN_IF_ERROR(engine::validateRequest(probe, engine_->limits()));
  }
  const std::string id = request.request_id;
  {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    if (transfer_stop_) return unavailable("worker " + std::to_string(options_.worker_id) + " is shut down");
    const uint64_t tag = ++next_fetch_tag_;
    if (!fetching_.try_emplace(id, tag, std::move(on_chunk)).second) {
      return Status(StatusCode::kAlreadyExists, "request_id '" + id + "' is already in flight");
    }
    auto job = std::make_shared<runtime::GenerateRequest>(std::move(request));
    transfer_jobs_.push_back([this, job, tag] { runDecodeLeg(std::move(*job), tag); });
  }
  transfer_cv_.notify_one();
  load_.markChanged();
  return Status::ok();
}

void Worker::runDecodeLeg(runtime::GenerateRequest request, uint64_t tag) {
  const std::string id = request.request_id;
  const std::string address = request.disaggregation.kv_address;
  const int32_t overlap = request.overlap_blocks;
  engine::Request er = toEngineRequest(std::move(request));
  const int32_t block_size = engine_->blockSize();
  const auto prompt = static_cast<int32_t>(er.token_ids.size());
  // The blocks admission could take from a cache: all full blocks but the one with the last
  // prompt token (its logits are computed here); those before overlap_blocks are expected here.
  const std::vector<kv::BlockHash> chain =
      kv::blockHashes(kv::rootHash(options_.model_id, er.cache_salt), er.token_ids, block_size);
  const int32_t max_hit = (prompt - 1) / block_size;
  const int32_t from = std::clamp(overlap, 0, max_hit);
  const auto live = [&] {  // transfer_mu_ held
    auto it = fetching_.find(id);
    return it != fetching_.end() && it->second.first == tag;
  };
  bool skip = false;
  {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    skip = !live() || transfer_stop_;
  }
  if (from < max_hit && !skip) {
    const std::vector<uint64_t> ids(chain.begin() + from, chain.begin() + max_hit);
    const auto t0 = std::chrono::steady_clock::now();
    transfer::FetchOptions fo;
    fo.timeout = options_.transfer_timeout;
    auto got = transfer::fetchBlocks(address, ids, fo);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    std::lock_guard<std::mutex> lock(transfer_mu_);
    transfer_stats_.fetch_us += us.count();
    if (got.isOk()) {
      ++transfer_stats_.fetches;
      transfer_stats_.blocks_fetched += static_cast<int64_t>(got->ids.size());
      transfer_stats_.bytes_fetched += static_cast<int64_t>(got->data.size());
      if (!got->ids.empty()) {
        auto blocks = std::make_shared<engine::KvBlocks>();
        blocks->block_bytes = got->block_bytes;
        blocks->hashes.assign(got->ids.begin(), got->ids.end());
        blocks->data = std::move(got->data);
        er.kv_import = std::move(blocks);
      }
    } else {
      ++transfer_stats_.fetch_failures;
    }
  }
  runtime::ChunkCallback on_chunk;
  Status st;
  {
    // Under the lock: an abort() from now on finds the request in the engine's inbox (after it).
    std::lock_guard<std::mutex> lock(transfer_mu_);
    if (!live()) return;  // aborted meanwhile: abort() ended it
    on_chunk = std::move(fetching_[id].second);
    fetching_.erase(id);
    st = addToEngine(std::move(er), on_chunk);
  }
  if (!st.isOk()) {
    runtime::GenerateChunk last;
    last.finish = runtime::FinishReason::kError;
    last.error = std::move(st);
    on_chunk(std::move(last));
    load_.markChanged();
  }
}

void Worker::transferLoop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(transfer_mu_);
      transfer_cv_.wait(lock, [&] { return transfer_stop_ || !transfer_jobs_.empty(); });
      if (transfer_jobs_.empty()) return;  // stopping, and every admitted leg was handed on
      job = std::move(transfer_jobs_.front());
      transfer_jobs_.pop_front();
    }
    job();
  }
}

Result<transfer::BlockBatch> exportEngineBlocks(engine::Engine& engine, const std::vector<uint64_t>& ids,
                                                std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<Result<engine::KvBlocks>>>();
  auto future = done->get_future();
  engine.exportBlocks(std::vector<kv::BlockHash>(ids.begin(), ids.end()),
                      [done](Result<engine::KvBlocks> r) { done->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return Status(StatusCode::kDeadlineExceeded, "the engine did not copy the blocks out in time");
  }
  Result<engine::KvBlocks> r = future.get();
  TURBINE_RETURN_IF_ERROR(r.status());
  transfer::BlockBatch batch;
  batch.block_bytes = r->block_bytes;
  batch.ids.assign(r->hashes.begin(), r->hashes.end());
  batch.data = std::move(r->data);
  return batch;
}

Result<transfer::BlockBatch> Worker::exportBlocks(const std::vector<uint64_t>& ids) {
  TURBINE_ASSIGN_OR_RETURN(transfer::BlockBatch batch, exportEngineBlocks(*engine_, ids, options_.transfer_timeout));
  std::lock_guard<std::mutex> lock(transfer_mu_);
  transfer_stats_.blocks_served += static_cast<int64_t>(batch.ids.size());
  return batch;
}

Worker::TransferStats Worker::transferStats() const {
  std::lock_guard<std::mutex> lock(transfer_mu_);
  return transfer_stats_;
}

void Worker::abort(const std::string& request_id) {
  runtime::ChunkCallback on_chunk;
  {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    auto it = fetching_.find(request_id);
    if (it != fetching_.end()) {  // a decode leg still fetching: ended now, its fetch dropped
      on_chunk = std::move(it->second.second);
      fetching_.erase(it);
    }
  }
  if (!on_chunk) {
    engine_->abort(request_id);
    return;
  }
  runtime::GenerateChunk last;
  last.finish = runtime::FinishReason::kAbort;
  last.usage = runtime::Usage{0, 0, 0};
  on_chunk(std::move(last));
  load_.markChanged();
}

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
  {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    m.waiting += static_cast<int32_t>(fetching_.size());  // decode legs fetching their blocks
  }
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
  {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    transfer_stop_ = true;  // legs queued still reach the engine (which ends them per `mode`)
  }
  transfer_cv_.notify_all();
  for (auto& t : transfer_threads_) t.join();
  transfer_server_.reset();
  if (engine_) engine_->shutdown(mode);
  load_.stop(/*last_report=*/engine_ != nullptr);  // routers see the worker empty
}

}  // namespace turbine::worker
