#include "engine/engine.h"

#include <utility>

namespace turbine::engine {
namespace {

int64_t nsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              t0)
      .count();
}

Output abortedOutput(const RequestId& id, Status status) {
  Output out;
  out.request_id = id;
  out.index = -1;  // the request as a whole
  out.finish_reason = FinishReason::kAbort;
  out.usage = Usage{};
  out.status = std::move(status);
  return out;
}

// The tiers EngineOptions::kv_tiers asks for (nullptr when none).
Result<std::unique_ptr<kv::KvBlockManager>> makeBlockManager(const ModelRunner& runner,
                                                             const EngineOptions& options) {
  const KvTierOptions& t = options.kv_tiers;
  if (t.host_bytes == 0 && t.disk_bytes == 0) return std::unique_ptr<kv::KvBlockManager>();
  if (!options.enable_prefix_caching)
    return invalidArgument("KV offloading (host / disk cache) needs prefix caching");
  const size_t block = runner.blockBytes();
  if (block == 0)
    return failedPrecondition("KV offloading: this engine's model runner cannot copy KV blocks");
  kv::KvBlockManagerOptions mo;
  mo.block_bytes = block;
  mo.host_blocks = static_cast<int64_t>(t.host_bytes / block);
  mo.disk_blocks = static_cast<int64_t>(t.disk_bytes / block);
  mo.disk_dir = t.disk_dir;
  const auto tooSmall = [&](const char* what, size_t bytes) {
    return invalidArgument(std::string("KV ") + what + " cache of " + std::to_string(bytes) +
                           " bytes holds no block (one block is " + std::to_string(block) +
                           " bytes)");
  };
  if (t.host_bytes > 0 && mo.host_blocks == 0) return tooSmall("host", t.host_bytes);
  if (t.disk_bytes > 0 && mo.disk_blocks == 0) return tooSmall("disk", t.disk_bytes);
  return kv::KvBlockManager::create(mo);
}

}  // namespace

std::optional<Output> OutputStream::next() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !queue_.empty() || live_ <= 0; });
  if (queue_.empty()) return std::nullopt;
  Output out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

void OutputStream::push(Output&& out) {
  {
    std::lock_guard lk(mu_);
    // index -1: the request failed as a whole (duplicate id, shut down).
    if (out.finished()) live_ = out.index < 0 ? 0 : live_ - 1;
    queue_.push_back(std::move(out));
  }
  cv_.notify_all();
}

Result<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<ModelRunner> runner,
                                               EngineOptions options) {
  if (!runner) return invalidArgument("engine: model runner is null");
  if (runner->vocabSize() <= 0 || runner->blockSize() <= 0 || runner->numBlocks() <= 0 ||
      runner->maxModelLen() <= 0) {
    return invalidArgument("engine: runner reports a non-positive vocab, block size, block count "
                           "or max_model_len");
  }
  if (options.max_num_batched_tokens < 1) return invalidArgument("max_num_batched_tokens < 1");
  if (options.max_num_seqs < 1) return invalidArgument("max_num_seqs < 1");
  if (options.max_waiting < 1) return invalidArgument("max_waiting < 1");
  for (int32_t id : options.eos_token_ids) {
    if (id < 0 || id >= runner->vocabSize())
      return invalidArgument("eos_token_ids: " + std::to_string(id) + " outside the vocabulary");
  }
  TURBINE_ASSIGN_OR_RETURN(auto block_manager, makeBlockManager(*runner, options));
  return std::unique_ptr<Engine>(
      new Engine(std::move(runner), std::move(options), std::move(block_manager)));
}

Engine::Engine(std::unique_ptr<ModelRunner> runner, EngineOptions options,
               std::unique_ptr<kv::KvBlockManager> block_manager)
    : options_(std::move(options)), runner_(std::move(runner)),
      block_manager_(std::move(block_manager)) {
  SchedulerOptions so;
  so.model_id = options_.model_id;
  so.max_num_batched_tokens = options_.max_num_batched_tokens;
  so.max_num_seqs = options_.max_num_seqs;
  so.enable_prefix_caching = options_.enable_prefix_caching;
  so.eos_token_ids = options_.eos_token_ids;
  so.waiting_gauge = &st_waiting_;
  so.token_trie = options_.token_trie;
  so.block_manager = block_manager_.get();
  if (options_.token_trie) guided_ = std::make_unique<GuidedDecoding>(options_.token_trie);
  scheduler_ = std::make_unique<Scheduler>(so, runner_.get());
  limits_ = scheduler_->limits();
  prev_time_ = std::chrono::steady_clock::now();
  publishStats();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(ShutdownMode::kAbort); }

Status Engine::add(Request request, OutputCallback callback) {
  TURBINE_RETURN_IF_ERROR(validateRequest(request, limits_));
  if (!accepting_.load()) return unavailable("engine is shutting down");
  std::shared_ptr<GuidedGrammar> guided;
  if (request.constraint) {
    if (!guided_)
      return invalidArgument("structured output is not available: the engine has no vocabulary");
    TURBINE_ASSIGN_OR_RETURN(guided, guided_->compile(*request.constraint));
  }
  const int32_t queued = queued_adds_.fetch_add(1);
  if (queued + st_waiting_.load(std::memory_order_relaxed) >= options_.max_waiting) {
    queued_adds_.fetch_sub(1);
    return resourceExhausted("waiting queue is full (" + std::to_string(options_.max_waiting) +
                             " requests)");
  }
  if (!post(AddMsg{std::move(request), std::move(callback), std::move(guided)})) {
    queued_adds_.fetch_sub(1);
    return unavailable("engine is shut down");
  }
  return Status::ok();
}

Result<std::shared_ptr<OutputStream>> Engine::addStream(Request request) {
  auto stream = std::make_shared<OutputStream>(request.n);
  TURBINE_RETURN_IF_ERROR(
      add(std::move(request), [stream](Output&& out) { stream->push(std::move(out)); }));
  return stream;
}

void Engine::abort(const RequestId& id) { post(AbortMsg{id}); }

void Engine::subscribeKvEvents(KvEventCallback callback) { post(SubscribeMsg{std::move(callback)}); }

void Engine::resetPrefixCache() { post(ResetMsg{}); }

void Engine::exportBlocks(std::vector<kv::BlockHash> hashes, ExportCallback done) {
  auto shared = std::make_shared<ExportCallback>(std::move(done));
  if (!post(ExportMsg{std::move(hashes), [shared](Result<KvBlocks> r) { (*shared)(std::move(r)); }})) {
    (*shared)(unavailable("engine is shut down"));
  }
}

void Engine::sync() {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  const bool posted = post(SyncMsg{[&] {
    std::lock_guard lk(m);
    done = true;
    cv.notify_all();
  }});
  if (!posted) return;
  std::unique_lock lk(m);
  cv.wait(lk, [&] { return done; });
}

void Engine::shutdown(ShutdownMode mode) {
  std::lock_guard guard(shutdown_mu_);
  accepting_.store(false);
  {
    std::lock_guard lk(mu_);
    if (!stop_ || mode == ShutdownMode::kAbort) stop_ = mode;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Engine::post(Message msg) {
  {
    std::lock_guard lk(mu_);
    if (closed_) return false;
    inbox_.push_back(std::move(msg));
  }
  cv_.notify_one();
  return true;
}

void Engine::loop() {
  std::vector<Message> msgs;
  for (;;) {
    std::optional<ShutdownMode> stop;
    {
      std::unique_lock lk(mu_);
      if (!scheduler_->hasWork()) cv_.wait(lk, [&] { return !inbox_.empty() || stop_; });
      msgs.swap(inbox_);
      stop = stop_;
    }
    const auto t0 = std::chrono::steady_clock::now();
    int32_t adds = 0;
    for (Message& m : msgs) {
      adds += std::holds_alternative<AddMsg>(m) ? 1 : 0;
      handle(m);
    }
    msgs.clear();
    if (adds > 0) queued_adds_.fetch_sub(adds);  // the scheduler's gauge counts them now
    if (stop == ShutdownMode::kAbort) scheduler_->abortAll(cancelled("engine shut down"));
    if (stop && !scheduler_->hasWork()) break;
    if (scheduler_->hasWork()) {
      (void)scheduler_->step();  // a forward error aborts its batch's requests with it
      st_loop_ns_.fetch_add(nsSince(t0), std::memory_order_relaxed);
    }
    publishKvEvents();
    publishStats();
  }
  publishKvEvents();
  publishStats();
  closeInbox();
}

void Engine::closeInbox() {
  std::vector<Message> late;
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    late.swap(inbox_);
  }
  for (Message& m : late) {
    if (auto* a = std::get_if<AddMsg>(&m)) {
      queued_adds_.fetch_sub(1);
      if (a->callback)
        a->callback(abortedOutput(a->request.request_id, unavailable("engine shut down")));
    } else if (auto* s = std::get_if<SyncMsg>(&m)) {
      s->done();
    } else if (auto* e = std::get_if<ExportMsg>(&m)) {
      e->done(unavailable("engine shut down"));
    }
  }
}

void Engine::handle(Message& msg) {
  if (auto* a = std::get_if<AddMsg>(&msg)) {
    const RequestId id = a->request.request_id;
    Status st = scheduler_->add(std::move(a->request), a->callback, std::move(a->guided));
    if (!st.isOk() && a->callback) a->callback(abortedOutput(id, std::move(st)));
  } else if (auto* ab = std::get_if<AbortMsg>(&msg)) {
    scheduler_->abort(ab->id);
  } else if (auto* sub = std::get_if<SubscribeMsg>(&msg)) {
    kv_subscribers_.push_back(std::move(sub->callback));
  } else if (std::holds_alternative<ResetMsg>(msg)) {
    scheduler_->resetPrefixCache();
  } else if (auto* ex = std::get_if<ExportMsg>(&msg)) {
    ex->done(scheduler_->exportBlocks(ex->hashes));
  } else if (auto* sy = std::get_if<SyncMsg>(&msg)) {
    publishKvEvents();
    publishStats();
    sy->done();
  }
}

void Engine::publishKvEvents() {
  std::vector<kv::KvEvent> events = scheduler_->pool().takeEvents();
  if (events.empty()) return;
  kv::KvEventMessage msg{options_.worker_id, kv_seq_++, std::move(events)};
  for (const auto& cb : kv_subscribers_) cb(msg);
}

void Engine::publishStats() {
  const auto r = std::memory_order_relaxed;
  const Scheduler& s = *scheduler_;
  const SchedulerCounters& c = s.counters();
  st_running_.store(s.numRunning(), r);
  st_used_.store(s.pool().numUsed(), r);
  st_cached_free_.store(s.pool().numCachedFree(), r);
  st_steps_.store(c.steps, r);
  st_prefill_.store(c.prefill_tokens, r);
  st_decode_.store(c.decode_tokens, r);
  st_preempt_.store(c.preemptions, r);
  st_finished_.store(c.finished_requests, r);
  st_looked_up_.store(c.prompt_tokens_looked_up, r);
  st_cached_.store(c.prompt_tokens_cached, r);
  st_forward_ns_.store(c.forward_ns, r);
  st_imported_.store(c.blocks_imported, r);
  st_exported_.store(c.blocks_exported, r);
  if (block_manager_) {
    const kv::KvBlockManagerStats m = block_manager_->stats();
    st_host_used_.store(m.host_used, r);
    st_disk_used_.store(m.disk_used, r);
    st_offloaded_.store(m.offloaded, r);
    st_onboarded_.store(m.onboarded_host + m.onboarded_disk, r);
  }
}

EngineStats Engine::stats() {
  const auto r = std::memory_order_relaxed;
  EngineStats s;
  s.running = st_running_.load(r);
  s.waiting = st_waiting_.load(r) + queued_adds_.load(r);
  s.kv_blocks_total = limits_.num_blocks;
  s.kv_blocks_used = st_used_.load(r);
  s.kv_blocks_cached_free = st_cached_free_.load(r);
  const int64_t looked = st_looked_up_.load(r);
  s.prefix_cache_hit_rate = looked > 0 ? static_cast<double>(st_cached_.load(r)) / looked : 0.0;
  s.steps = st_steps_.load(r);
  s.prefill_tokens = st_prefill_.load(r);
  s.decode_tokens = st_decode_.load(r);
  s.preemptions = st_preempt_.load(r);
  s.finished_requests = st_finished_.load(r);
  if (block_manager_) {  // the capacities are fixed at construction
    s.kv_host_blocks_total = options_.kv_tiers.host_bytes / block_manager_->blockBytes();
    s.kv_disk_blocks_total = options_.kv_tiers.disk_bytes / block_manager_->blockBytes();
  }
  s.kv_host_blocks_used = st_host_used_.load(r);
  s.kv_disk_blocks_used = st_disk_used_.load(r);
  s.kv_blocks_offloaded = st_offloaded_.load(r);
  s.kv_blocks_onboarded = st_onboarded_.load(r);
  s.kv_blocks_imported = st_imported_.load(r);
  s.kv_blocks_exported = st_exported_.load(r);
  const int64_t loop_ns = st_loop_ns_.load(r), fwd_ns = st_forward_ns_.load(r);

  std::lock_guard lk(stats_mu_);
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - prev_time_).count();
  if (dt > 0) {
    s.steps_per_s = static_cast<double>(s.steps - prev_stats_.steps) / dt;
    s.prefill_tokens_per_s = static_cast<double>(s.prefill_tokens - prev_stats_.prefill_tokens) / dt;
    s.decode_tokens_per_s = static_cast<double>(s.decode_tokens - prev_stats_.decode_tokens) / dt;
  }
  const int64_t steps = s.steps - prev_stats_.steps;
  if (steps > 0) {
    s.overhead_us_per_step =
        static_cast<double>((loop_ns - prev_loop_ns_) - (fwd_ns - prev_forward_ns_)) / 1e3 /
        static_cast<double>(steps);
  }
  prev_stats_ = s;
  prev_loop_ns_ = loop_ns;
  prev_forward_ns_ = fwd_ns;
  prev_time_ = now;
  return s;
}

}  // namespace turbine::engine
