#include "frontend/engine_backend.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "kv/block_hash.h"

namespace turbine::frontend {
namespace {

FinishReason toFinish(runtime::FinishReason r) {
  switch (r) {
    case runtime::FinishReason::kNone: return FinishReason::kNone;
    case runtime::FinishReason::kStop: return FinishReason::kStop;
    case runtime::FinishReason::kLength: return FinishReason::kLength;
    case runtime::FinishReason::kAbort: return FinishReason::kAbort;
    case runtime::FinishReason::kError: return FinishReason::kError;
  }
  return FinishReason::kError;
}

// The model's IncrementalDecoder behind the frontend's interface. Output text continues a
// prompt, so a SentencePiece vocabulary keeps the first token's leading space; special tokens
// (a finishing EOS) are not part of the text, as in vLLM's default.
class TokenizerDetokenizer : public IncrementalDetokenizer {
 public:
  explicit TokenizerDetokenizer(std::shared_ptr<const model::Tokenizer> tokenizer)
      : tokenizer_(std::move(tokenizer)),
        decoder_(*tokenizer_, /*skip_special_tokens=*/true, /*at_sequence_start=*/false) {}
  std::string push(int32_t token_id) override { return decoder_.step(token_id); }
  std::string flush() override { return decoder_.flush(); }

 private:
  std::shared_ptr<const model::Tokenizer> tokenizer_;  // outlives decoder_, which refers to it
  model::IncrementalDecoder decoder_;
};

}  // namespace

namespace {

TokenLogprob toTokenLogprob(runtime::TokenLogprobs&& lp) {
  TokenLogprob t;
  t.token_id = lp.token_id;
  t.logprob = lp.logprob;
  t.top = std::move(lp.top);
  t.rank = lp.rank;
  return t;
}

}  // namespace

GenerationChunk toGenerationChunk(runtime::GenerateChunk&& c) {
  GenerationChunk out;
  out.token_ids = std::move(c.token_ids);
  out.logprobs.reserve(c.logprobs.size());
  for (auto& lp : c.logprobs) out.logprobs.push_back(toTokenLogprob(std::move(lp)));
  if (c.prompt_logprobs) {
    out.prompt_logprobs.emplace();
    out.prompt_logprobs->reserve(c.prompt_logprobs->size());
    for (auto& lp : *c.prompt_logprobs) out.prompt_logprobs->push_back(toTokenLogprob(std::move(lp)));
  }
  out.finish = toFinish(c.finish);
  if (out.finish == FinishReason::kError) {
    out.error = c.error.isOk() ? internalError("worker failed the request") : std::move(c.error);
  }
  if (c.usage) out.cached_tokens = c.usage->cached_tokens;
  return out;
}

EngineBackend::EngineBackend(EngineBackendOptions options,
                             std::shared_ptr<const model::Tokenizer> tokenizer,
                             std::shared_ptr<const model::ChatTemplate> chat_template,
                             std::shared_ptr<router::Router> router, BackendPlanes planes)
    : options_(std::move(options)),
      tokenizer_(std::move(tokenizer)),
      template_(std::move(chat_template)),
      router_(std::move(router)),
      kv_router_(dynamic_cast<router::KvRouter*>(router_.get())),
      planes_(planes) {}

Result<std::shared_ptr<EngineBackend>> EngineBackend::create(
    EngineBackendOptions options, std::shared_ptr<const model::Tokenizer> tokenizer,
    std::shared_ptr<const model::ChatTemplate> chat_template,
    std::shared_ptr<router::Router> router, BackendPlanes planes) {
  if (options.served_model_name.empty()) return invalidArgument("engine backend: served_model_name is empty");
  if (options.model_id.empty()) return invalidArgument("engine backend: model_id is empty");
  if (!tokenizer) return invalidArgument("engine backend: no tokenizer");
  if (!router) return invalidArgument("engine backend: no router");
  if (!planes.requests || !planes.discovery || !planes.events) {
    return invalidArgument("engine backend: a request, discovery and event plane are all required");
  }
  if (options.max_local_prefill_tokens < 0) {
    return invalidArgument("engine backend: max_local_prefill_tokens must be >= 0");
  }
  TURBINE_ASSIGN_OR_RETURN(auto prefill_router, router::makeRouter(options.prefill_router));
  std::shared_ptr<EngineBackend> b(new EngineBackend(std::move(options), std::move(tokenizer),
                                                     std::move(chat_template), std::move(router), planes));
  b->prefill_router_ = std::shared_ptr<router::Router>(std::move(prefill_router));
  b->wire();
  return b;
}

void EngineBackend::wire() {
  subscriptions_.push_back(planes_.events->subscribe(runtime::Topic::kKv, [this](const auto& p) { onEvent(p); }));
  subscriptions_.push_back(planes_.events->subscribe(runtime::Topic::kLoad, [this](const auto& p) { onEvent(p); }));
  watch_ = planes_.discovery->watch([this](const runtime::DiscoveryEvent& e) { onDiscovery(e); });
}

EngineBackend::~EngineBackend() {
  planes_.discovery->unwatch(watch_);
  for (auto id : subscriptions_) planes_.events->unsubscribe(id);
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    tasks_stop_ = true;
    tasks_cv_.notify_all();
  }
  if (task_thread_.joinable()) task_thread_.join();  // pending migrations end their requests first
}

void EngineBackend::onDiscovery(const runtime::DiscoveryEvent& e) {
  const auto& rec = e.record;
  if (rec.model_id != options_.model_id) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    suspended_.erase(rec.worker_id);  // discovery's word replaces the suspension
    strikes_.erase(rec.worker_id);
  }
  if (e.kind == runtime::DiscoveryEvent::Kind::kRemoved) {
    std::string role = rec.role;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = workers_.find(rec.worker_id);
      if (it != workers_.end()) {
        role = it->second.record.role;
        workers_.erase(it);
      }
    }
    routerFor(role).removeWorker(rec.worker_id);
    return;
  }
  (void)addRecord(rec);
}

bool EngineBackend::addRecord(const runtime::WorkerRecord& rec) {
  auto client = planes_.requests->connect(rec.endpoint);
  if (!client.isOk()) return false;  // not reachable: not routable either
  std::string old_role;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (workers_.empty()) block_size_ = rec.block_size;
    if (auto it = workers_.find(rec.worker_id); it != workers_.end()) old_role = it->second.record.role;
    WorkerEntry entry;
    entry.record = rec;
    entry.client = std::move(client).value();
    entry.load.worker_id = rec.worker_id;
    entry.load.kv_blocks_total = rec.kv_blocks_total;
    workers_[rec.worker_id] = std::move(entry);
  }
  if (rec.role == "prefill") any_prefill_.store(true, std::memory_order_release);
  if (!old_role.empty() && old_role != rec.role) routerFor(old_role).removeWorker(rec.worker_id);
  routerFor(rec.role).addWorker(router::WorkerInfo{rec.worker_id, rec.model_id, rec.role, rec.block_size,
                                                   rec.kv_blocks_total});
  return true;
}

void EngineBackend::onEvent(const runtime::EventPayload& payload) {
  if (const auto* msg = std::get_if<kv::KvEventMessage>(&payload)) {
    if (!any_prefill_.load(std::memory_order_acquire)) {
      router_->onKvEvents(*msg);
      return;
    }
    bool prefill = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = workers_.find(msg->worker_id);
      prefill = it != workers_.end() && it->second.record.role == "prefill";
    }
    (prefill ? prefill_router_ : router_)->onKvEvents(*msg);
    return;
  }
  const auto& load = std::get<kv::LoadMetrics>(payload);
  std::string role;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = workers_.find(load.worker_id);
    if (it == workers_.end()) return;  // another model's worker
    it->second.load = load;
    role = it->second.record.role;
  }
  routerFor(role).onLoad(load);
}

std::vector<ModelCard> EngineBackend::models() const {
  ModelCard card;
  card.id = options_.served_model_name;
  card.created = options_.created;
  card.vocab_size = options_.vocab_size > 0 ? options_.vocab_size : tokenizer_->vocabSize();
  card.max_model_len = options_.max_model_len;
  if (card.max_model_len <= 0) {
    std::lock_guard<std::mutex> lock(mu_);
    int32_t len = 0;
    for (const auto& [id, w] : workers_) {
      if (w.record.max_model_len > 0 && (len == 0 || w.record.max_model_len < len)) len = w.record.max_model_len;
    }
    card.max_model_len = len > 0 ? len : 2048;
  }
  return {card};
}

Result<std::string> EngineBackend::renderChat(const std::string&, const std::vector<ChatMessage>& messages,
                                              const ChatTemplateArgs& args) {
  if (!template_) {
    return invalidArgument("model '" + options_.served_model_name +
                           "' has no chat template; use /v1/completions");
  }
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    nlohmann::ordered_json j;
    j["role"] = m.role;
    if (m.has_parts) {
      j["content"] = nlohmann::ordered_json::array();
      for (const auto& part : m.parts) j["content"].push_back({{"type", "text"}, {"text", part}});
    } else {
      j["content"] = m.content;
    }
    if (m.name) j["name"] = *m.name;
    if (m.tool_call_id) j["tool_call_id"] = *m.tool_call_id;
    if (!m.tool_calls.is_null()) j["tool_calls"] = m.tool_calls;
    msgs.push_back(std::move(j));
  }
  return template_->render(msgs, args.add_generation_prompt, options_.bos_token, options_.eos_token, args.tools,
                           args.extra);
}

Result<std::vector<int32_t>> EngineBackend::tokenize(const std::string&, const std::string& text,
                                                     bool add_special_tokens) {
  return tokenizer_->encode(text, add_special_tokens, /*parse_special=*/true);
}

Result<std::string> EngineBackend::detokenize(const std::string&, const std::vector<int32_t>& ids) {
  const int32_t vocab = tokenizer_->vocabSize();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return invalidArgument("tokens[" + std::to_string(i) + "]: token id " + std::to_string(ids[i]) +
                             " is out of range [0, " + std::to_string(vocab) + ")");
    }
  }
  return tokenizer_->decode(ids, /*skip_special_tokens=*/false);
}

std::unique_ptr<IncrementalDetokenizer> EngineBackend::newDetokenizer(const std::string&) {
  return std::make_unique<TokenizerDetokenizer>(tokenizer_);
}

std::string EngineBackend::tokenPiece(const std::string&, int32_t token_id) {
  return std::string(tokenizer_->tokenBytes(token_id));
}

runtime::GenerateRequest EngineBackend::toRuntimeRequest(GenerateRequest&& r, int32_t overlap_blocks) const {
  runtime::GenerateRequest out;
  out.request_id = std::move(r.request_id);
  out.token_ids = std::move(r.prompt_token_ids);
  out.cache_salt = std::move(r.cache_salt);
  out.overlap_blocks = overlap_blocks;
  auto& s = out.sampling;
  s.temperature = static_cast<float>(r.sampling.temperature);
  s.top_p = static_cast<float>(r.sampling.top_p);
  s.top_k = r.sampling.top_k;
  s.min_p = static_cast<float>(r.sampling.min_p);
  if (r.sampling.seed) s.seed = static_cast<uint64_t>(*r.sampling.seed);
  s.repetition_penalty = static_cast<float>(r.sampling.repetition_penalty);
  s.presence_penalty = static_cast<float>(r.sampling.presence_penalty);
  s.frequency_penalty = static_cast<float>(r.sampling.frequency_penalty);
  s.logit_bias.assign(r.sampling.logit_bias.begin(), r.sampling.logit_bias.end());
  s.logprobs = r.sampling.logprobs;
  s.prompt_logprobs = r.sampling.prompt_logprobs;
  out.stop.max_tokens = r.stop.max_tokens;
  out.stop.min_tokens = r.stop.min_tokens;
  out.stop.ignore_eos = r.stop.ignore_eos;
  out.stop.stop_token_ids = std::move(r.stop.stop_token_ids);
  out.constraint = std::move(r.constraint);
  return out;
}

Result<EngineBackend::Routed> EngineBackend::routeRequest(const GenerateRequest& request) {
  const std::string& id = request.request_id;
  int32_t block_size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    block_size = block_size_;
  }
  const std::vector<kv::BlockHash> hashes = kv::blockHashes(
      kv::rootHash(options_.model_id, request.cache_salt), request.prompt_token_ids, block_size);
  const auto prompt_tokens = static_cast<int32_t>(request.prompt_token_ids.size());
  TURBINE_ASSIGN_OR_RETURN(router::RouteDecision decision,
                           router_->route({id, options_.model_id, hashes, prompt_tokens}));
  Routed routed{nullptr, decision.overlap_blocks, decision.worker, ""};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto w = workers_.find(decision.worker);
    if (w != workers_.end()) {
      routed.client = w->second.client;
      routed.role = w->second.record.role;
    }
    if (routed.client) {
      auto [it, inserted] = requests_.try_emplace(id, InFlight{routed.client, nullptr, false, false});
      if (!inserted && it->second.migrating) {  // the next worker of a migrating request
        it->second.client = routed.client;
        it->second.migrating = false;
      } else if (!inserted) {
        routed.client = nullptr;
      }
    }
  }
  if (!routed.client) {
    router_->onRequestFinished(id);
    return unavailable("worker " + std::to_string(decision.worker) + " is gone, or request id '" + id +
                       "' is already running");
  }
  return routed;
}

Status EngineBackend::generate(GenerateRequest request, ChunkSink sink) {
  auto m = std::make_shared<Migration>();
  m->original = std::move(request);
  m->sink = std::move(sink);
  return admit(m);
}

Status EngineBackend::admit(const std::shared_ptr<Migration>& m) {
  // A worker that refuses as Unavailable (it died, its lease has not expired yet) leaves the
  // routing at once, and the request is routed again among the others.
  restoreSuspended();
  Status st;
  for (int attempt = 0; attempt < kMaxRouteAttempts; ++attempt) {
    kv::WorkerId worker = 0;
    st = tryGenerate(m, &worker);
    if (st.code() != StatusCode::kUnavailable || worker == kNoWorker) return st;
    dropWorker(worker);
  }
  return st;
}

void EngineBackend::dropWorker(kv::WorkerId worker) {
  std::string role;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = workers_.find(worker);
    if (it == workers_.end()) return;
    role = it->second.record.role;
    suspendLocked(it->second.record);
    workers_.erase(it);
  }
  routerFor(role).removeWorker(worker);
}

void EngineBackend::restoreSuspended() {
  if (!any_suspended_.load(std::memory_order_acquire)) return;
  std::vector<runtime::WorkerRecord> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = suspended_.begin(); it != suspended_.end();) {
      if (it->second.retry_at > now) {
        ++it;
        continue;
      }
      due.push_back(std::move(it->second.record));
      it = suspended_.erase(it);
    }
    any_suspended_.store(!suspended_.empty(), std::memory_order_release);
  }
  for (const auto& rec : due) {
    if (addRecord(rec)) continue;
    std::lock_guard<std::mutex> lock(mu_);  // unreachable: suspended again, for longer
    suspendLocked(rec);
  }
}

void EngineBackend::suspendLocked(const runtime::WorkerRecord& rec) {
  const int strikes = std::min(strikes_[rec.worker_id]++, 5);
  const auto delay = std::chrono::milliseconds(options_.worker_retry_ms << strikes);
  suspended_[rec.worker_id] = Suspended{rec, std::chrono::steady_clock::now() + delay};
  any_suspended_.store(true, std::memory_order_release);
}

GenerateRequest EngineBackend::continuation(const Migration& m) {
  GenerateRequest r = m.original;
  if (m.generated.empty()) return r;
  // The tokens already streamed become prompt; what is left of the budgets goes on.
  r.prompt_token_ids.insert(r.prompt_token_ids.end(), m.generated.begin(), m.generated.end());
  const auto done = static_cast<int32_t>(m.generated.size());
  r.stop.max_tokens = std::max(1, r.stop.max_tokens - done);
  r.stop.min_tokens = std::max(0, r.stop.min_tokens - done);
  if (r.constraint) r.constraint->resume_tokens = done;  // the output so far must be continued
  r.sampling.prompt_logprobs = -1;  // they came with the first token
  return r;
}

Status EngineBackend::tryGenerate(const std::shared_ptr<Migration>& m, kv::WorkerId* worker) {
  *worker = kNoWorker;
  GenerateRequest request = continuation(*m);
  TURBINE_ASSIGN_OR_RETURN(Routed routed, routeRequest(request));
  const auto prompt_tokens = static_cast<int64_t>(request.prompt_token_ids.size());
  runtime::GenerateRequest rr = toRuntimeRequest(std::move(request), routed.overlap_blocks);
  int32_t block_size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    block_size = block_size_;
  }
  const int64_t uncached = prompt_tokens - int64_t{routed.overlap_blocks} * block_size;
  // Prompt logprobs need the prompt's logits, which only a local prefill computes.
  if (routed.role == "decode" && options_.max_local_prefill_tokens > 0 && !m->local_prefill_only &&
      rr.sampling.prompt_logprobs < 0 &&
      uncached > options_.max_local_prefill_tokens && startPrefillLeg(m, routed, rr)) {
    return Status::ok();  // the decode leg follows when the prefill leg ends
  }
  return sendToWorker(m, routed, std::move(rr), worker);
}

Status EngineBackend::sendToWorker(const std::shared_ptr<Migration>& m, const Routed& routed,
                                   runtime::GenerateRequest request, kv::WorkerId* worker) {
  *worker = kNoWorker;
  const std::string id = request.request_id;
  auto on_chunk = [this, m, worker_id = routed.worker, first = true](runtime::GenerateChunk&& c) mutable {
    GenerationChunk chunk = toGenerationChunk(std::move(c));
    const std::string& id = m->original.request_id;
    if (first && (!chunk.token_ids.empty() || chunk.finish != FinishReason::kNone)) {
      first = false;
      if (kv_router_) kv_router_->onPrefillCompleted(id);
    }
    if (chunk.finish == FinishReason::kError && chunk.error.code() == StatusCode::kUnavailable &&
        migrate(m, worker_id, chunk)) {
      return;  // the request goes on elsewhere; the sink never sees this worker's failure
    }
    m->generated.insert(m->generated.end(), chunk.token_ids.begin(), chunk.token_ids.end());
    const auto prompt_tokens = static_cast<int32_t>(m->original.prompt_token_ids.size());
    if (chunk.cached_tokens) chunk.cached_tokens = std::min(*chunk.cached_tokens, prompt_tokens);
    if (chunk.finish != FinishReason::kNone) {
      finishRequest(id, chunk, prompt_tokens, !m->remote_prefill.load(std::memory_order_relaxed));
    }
    m->sink(std::move(chunk));
  };
  Status st = routed.client->generate(std::move(request), std::move(on_chunk));
  bool abort_now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = requests_.find(id);
    if (it != requests_.end()) {
      if (!st.isOk()) requests_.erase(it);  // refused: no chunk will come
      else abort_now = it->second.aborted;
    }
  }
  if (!st.isOk()) {
    router_->onRequestFinished(id);
    *worker = routed.worker;
    return st;
  }
  if (abort_now) routed.client->abort(id);  // abort() came before the worker knew the id
  return Status::ok();
}

bool EngineBackend::startPrefillLeg(const std::shared_ptr<Migration>& m, const Routed& routed,
                                    const runtime::GenerateRequest& request) {
  const std::string& id = request.request_id;
  int32_t block_size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    block_size = block_size_;
  }
  const std::vector<kv::BlockHash> hashes =
      kv::blockHashes(kv::rootHash(options_.model_id, request.cache_salt), request.token_ids, block_size);
  auto decision = prefill_router_->route(
      {id, options_.model_id, hashes, static_cast<int32_t>(request.token_ids.size())});
  if (!decision.isOk()) return false;  // no prefill worker now
  std::shared_ptr<runtime::WorkerClient> client;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto w = workers_.find(decision->worker);
    if (w != workers_.end() && w->second.record.role == "prefill") client = w->second.client;
    auto it = requests_.find(id);
    if (client && it != requests_.end()) it->second.prefill_client = client;
  }
  if (!client) {
    prefill_router_->onRequestFinished(id);
    return false;
  }
  runtime::GenerateRequest leg = request;
  leg.overlap_blocks = decision->overlap_blocks;
  leg.disaggregation.prefill_only = true;
  const kv::WorkerId prefill_worker = decision->worker;
  auto on_chunk = [this, m, routed, decode = std::make_shared<runtime::GenerateRequest>(request),
                   prefill_worker](runtime::GenerateChunk&& c) {
    if (c.finish == runtime::FinishReason::kNone) return;  // its one token is not the client's
    post([this, m, routed, decode, prefill_worker, last = std::move(c)]() mutable {
      finishPrefillLeg(m, routed, std::move(*decode), prefill_worker, std::move(last));
    });
  };
  const Status st = client->generate(std::move(leg), std::move(on_chunk));
  if (st.isOk()) return true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = requests_.find(id); it != requests_.end()) it->second.prefill_client = nullptr;
  }
  prefill_router_->onRequestFinished(id);
  if (st.code() == StatusCode::kUnavailable) dropWorker(prefill_worker);
  prefill_fallbacks_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void EngineBackend::finishPrefillLeg(const std::shared_ptr<Migration>& m, const Routed& routed,
                                     runtime::GenerateRequest request, kv::WorkerId prefill_worker,
                                     runtime::GenerateChunk last) {
  const std::string id = request.request_id;
  prefill_router_->onRequestFinished(id);
  bool aborted = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = requests_.find(id);
    if (it != requests_.end()) {
      aborted = it->second.aborted;
      it->second.prefill_client = nullptr;
    }
  }
  if (aborted) {
    GenerationChunk end;
    end.finish = FinishReason::kAbort;
    finishRequest(id, end, static_cast<int32_t>(m->original.prompt_token_ids.size()));
    m->sink(std::move(end));
    return;
  }
  const bool done = last.finish == runtime::FinishReason::kStop || last.finish == runtime::FinishReason::kLength;
  if (done && !last.kv_address.empty()) {
    request.disaggregation.kv_address = last.kv_address;
    m->remote_prefill.store(true, std::memory_order_relaxed);
    remote_prefills_.fetch_add(1, std::memory_order_relaxed);
  } else {
    prefill_fallbacks_.fetch_add(1, std::memory_order_relaxed);  // the decode worker prefills
    if (last.finish == runtime::FinishReason::kError && last.error.code() == StatusCode::kUnavailable) {
      dropWorker(prefill_worker);
    }
  }
  kv::WorkerId refused = kNoWorker;
  Status st = sendToWorker(m, routed, std::move(request), &refused);
  if (st.isOk()) return;
  // The decode worker refused the leg (the request is no longer in flight): route the request
  // again, prefilling wherever it lands, or end it.
  if (st.code() == StatusCode::kUnavailable && refused != kNoWorker) dropWorker(refused);
  m->local_prefill_only = true;
  m->remote_prefill.store(false, std::memory_order_relaxed);
  st = admit(m);
  if (st.isOk()) return;
  GenerationChunk end;
  end.finish = FinishReason::kError;
  end.error = std::move(st);
  m->sink(std::move(end));
}

bool EngineBackend::migrate(const std::shared_ptr<Migration>& m, kv::WorkerId worker, GenerationChunk& failed) {
  const std::string& id = m->original.request_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = requests_.find(id);
    if (m->migrations >= options_.migration_limit || it == requests_.end() || it->second.aborted) return false;
    it->second.client = nullptr;  // between workers: abort() only marks it
    it->second.migrating = true;
  }
  ++m->migrations;
  migrations_.fetch_add(1, std::memory_order_relaxed);
  if (!failed.token_ids.empty()) {  // tokens that came with the failure still reach the client
    GenerationChunk part;
    part.token_ids = std::move(failed.token_ids);
    part.logprobs = std::move(failed.logprobs);
    part.prompt_logprobs = std::move(failed.prompt_logprobs);
    m->generated.insert(m->generated.end(), part.token_ids.begin(), part.token_ids.end());
    m->sink(std::move(part));
  }
  router_->onRequestFinished(id);
  dropWorker(worker);
  // Admission may wait on the request plane: not on the thread that delivered this chunk.
  post([this, m, error = failed.error] {
    bool aborted = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = requests_.find(m->original.request_id);
      aborted = it != requests_.end() && it->second.aborted;
      if (aborted) requests_.erase(it);
    }
    GenerationChunk last;
    if (aborted) {
      last.finish = FinishReason::kAbort;
    } else {
      Status st = admit(m);
      if (st.isOk()) return;
      last.finish = FinishReason::kError;
      last.error = unavailable(error.message() + "; migration to another worker failed: " + st.message());
      std::lock_guard<std::mutex> lock(mu_);
      requests_.erase(m->original.request_id);
    }
    m->sink(std::move(last));
  });
  return true;
}

void EngineBackend::post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(tasks_mu_);
  if (!task_thread_.joinable()) task_thread_ = std::thread([this] { runTasks(); });
  tasks_.push_back(std::move(task));
  tasks_cv_.notify_one();
}

void EngineBackend::runTasks() {
  std::unique_lock<std::mutex> lock(tasks_mu_);
  while (true) {
    tasks_cv_.wait(lock, [this] { return tasks_stop_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, and nothing is left to run
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

void EngineBackend::finishRequest(const std::string& request_id, const GenerationChunk& final_chunk,
                                  int32_t prompt_tokens, bool router_usage) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.erase(request_id);
  }
  if (kv_router_ && final_chunk.cached_tokens && router_usage) {
    kv_router_->onUsage(request_id, *final_chunk.cached_tokens);
  }
  router_->onRequestFinished(request_id);
  if (final_chunk.cached_tokens) {
    prompt_tokens_.fetch_add(prompt_tokens, std::memory_order_relaxed);
    cached_tokens_.fetch_add(*final_chunk.cached_tokens, std::memory_order_relaxed);
  }
}

void EngineBackend::abort(const std::string& request_id) {
  std::shared_ptr<runtime::WorkerClient> client, prefill_client;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = requests_.find(request_id);
    if (it == requests_.end()) return;
    it->second.aborted = true;
    client = it->second.client;
    prefill_client = it->second.prefill_client;
  }
  if (prefill_client) prefill_client->abort(request_id);  // its end sees the mark
  if (client) client->abort(request_id);  // else it is between workers: the migration sees the mark
}

Status EngineBackend::health() {
  restoreSuspended();
  std::vector<std::shared_ptr<runtime::WorkerClient>> clients;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, w] : workers_) clients.push_back(w.client);
  }
  if (clients.empty()) return unavailable("no worker serves model '" + options_.served_model_name + "'");
  for (auto& c : clients) {
    if (c->health().isOk()) return Status::ok();
  }
  return unavailable("no worker of model '" + options_.served_model_name + "' is healthy");
}

BackendStats EngineBackend::stats() {
  BackendStats s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, w] : workers_) {
      s.running += w.load.running;
      s.waiting += w.load.waiting;
      s.kv_blocks_total += w.load.kv_blocks_total;
      s.kv_blocks_used += w.load.kv_blocks_used;
      s.kv_host_blocks_total += w.load.kv_host_blocks_total;
      s.kv_host_blocks_used += w.load.kv_host_blocks_used;
      s.kv_disk_blocks_total += w.load.kv_disk_blocks_total;
      s.kv_disk_blocks_used += w.load.kv_disk_blocks_used;
    }
  }
  s.extra_metrics = routerMetrics();
  const int64_t prompt = prompt_tokens_.load(std::memory_order_relaxed);
  if (prompt > 0) {
    s.prefix_cache_hit_rate =
        static_cast<double>(cached_tokens_.load(std::memory_order_relaxed)) / static_cast<double>(prompt);
  }
  return s;
}

size_t EngineBackend::numWorkers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<size_t>(std::count_if(workers_.begin(), workers_.end(),
                                           [](const auto& w) { return w.second.record.role != "prefill"; }));
}

size_t EngineBackend::numPrefillWorkers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return workers_.size() - static_cast<size_t>(std::count_if(workers_.begin(), workers_.end(), [](const auto& w) {
           return w.second.record.role != "prefill";
         }));
}

std::string prometheusLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

std::string EngineBackend::routerMetrics() const {
  const std::string model = "model=\"" + prometheusLabel(options_.served_model_name) + "\"";
  std::string out = "turbine_request_migrations_total{" + model + "} " +
                    std::to_string(migrations_.load(std::memory_order_relaxed)) + "\n";
  out += "turbine_disagg_remote_prefills_total{" + model + "} " +
         std::to_string(remote_prefills_.load(std::memory_order_relaxed)) + "\n";
  out += "turbine_disagg_prefill_fallbacks_total{" + model + "} " +
         std::to_string(prefill_fallbacks_.load(std::memory_order_relaxed)) + "\n";
  if (!kv_router_) return out;
  const router::KvRouterStats st = kv_router_->stats();
  auto line = [&out](const char* name, const std::string& labels, double v) {
    char num[64];
    std::snprintf(num, sizeof num, "%.17g", v);
    out += std::string(name) + "{" + labels + "} " + num + "\n";
  };
  for (const auto& [worker, n] : st.routed_per_worker) {
    line("turbine_router_requests_total", model + ",worker=\"" + std::to_string(worker) + "\"", static_cast<double>(n));
  }
  line("turbine_router_index_blocks", model, static_cast<double>(st.index_hashes));
  line("turbine_router_index_entries", model, static_cast<double>(st.index_entries));
  line("turbine_router_kv_events_applied_total", model, static_cast<double>(st.events_applied));
  line("turbine_router_kv_event_seq_gaps_total", model, static_cast<double>(st.seq_gaps));
  line("turbine_router_usage_reports_total", model, static_cast<double>(st.usage_reports));
  line("turbine_router_predicted_cached_tokens_total", model, static_cast<double>(st.predicted_cached_tokens));
  line("turbine_router_actual_cached_tokens_total", model, static_cast<double>(st.actual_cached_tokens));
  line("turbine_router_abs_error_cached_tokens_total", model, static_cast<double>(st.abs_error_tokens));
  for (double q : {0.5, 0.9, 0.99}) {  // a summary: bucket upper bounds, in seconds
    char qs[16];
    std::snprintf(qs, sizeof qs, "%g", q);
    line("turbine_router_decision_seconds", model + ",quantile=\"" + qs + "\"",
         static_cast<double>(st.decision_latency.quantileNs(q)) * 1e-9);
  }
  line("turbine_router_decision_seconds_count", model, static_cast<double>(st.decision_latency.count()));
  return out;
}

}  // namespace turbine::frontend
