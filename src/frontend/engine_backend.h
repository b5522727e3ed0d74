// EngineBackend: the ServingBackend of `turbine serve` and `turbine frontend` — a real model's
// tokenizer and chat template in front of a router and the workers it picks (DESIGN.md §4):
//   1. renderChat / tokenize with the model's own chat template and tokenizer;
//   2. generate(): the prompt's block hashes (DESIGN.md §3.1, root = model_id + cache_salt), a
//      route from the router, then the chosen worker's WorkerClient over the request plane;
//      its chunks become GenerationChunks (the final one carries cached_tokens);
//   3. abort(): forwarded to the worker that runs the request (a client disconnect frees its
//      KV blocks at once).
// Failures (DESIGN.md §4 step 5): a worker that refuses a request as Unavailable leaves routing
// and the request is routed again (kMaxRouteAttempts workers in all); a worker that fails an
// admitted request with Unavailable (it died mid-stream) leaves routing and the request migrates:
// it goes on on another worker with the tokens already streamed appended to its prompt and the
// rest of its budgets (options.migration_limit times at most; the client sees one stream).
// Disaggregated serving (DESIGN.md §4 step 3, docs/fleet.md): workers of role "prefill" are routed
// by a second router of their own (options.prefill_router). When the worker chosen for a request
// has role "decode" and more than options.max_local_prefill_tokens of the prompt are not cached
// there, the request first runs on a prefill worker as a prefill leg (one token, discarded); the
// decode leg then goes to the chosen worker with the prefill worker's transfer address, and the
// decode worker fetches the prompt's blocks instead of computing them. A prefill leg that fails
// or is refused falls back to prefilling on the decode worker; an abort reaches both legs.
// Wiring: the backend watches discovery (workers of options.model_id join and leave the router
// and get a request-plane client), subscribes to the event plane ("kv" events and "load"
// metrics go to the router; load metrics also feed stats()).
// stats(): running, waiting and KV blocks summed over the workers' latest load reports; the
// prefix-cache hit rate is cached prompt tokens / prompt tokens of the requests it served; with
// the kv router, its metrics (routed per worker, index size, events, accuracy, decision latency)
// as extra Prometheus lines.
// Thread safety: all methods are thread-safe (ServingBackend's contract). The planes and the
// router must outlive the backend; the destructor stops watching and subscribing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "frontend/backend.h"
#include "kv/load_metrics.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "router/kv_router.h"
#include "router/router.h"
#include "runtime/discovery.h"
#include "runtime/event_plane.h"
#include "runtime/request_plane.h"

namespace turbine::frontend {

struct EngineBackendOptions {
  std::string served_model_name;  // what clients put in "model" (required)
  std::string model_id;           // block-hash root, as the workers' records say (required)
  int32_t max_model_len = 0;      // 0: the smallest max_model_len among the workers' records
  int32_t vocab_size = 0;         // token ids must be below it; 0: the tokenizer's vocabulary
  std::string bos_token;          // chat template variables
  std::string eos_token;
  int64_t created = 0;            // /v1/models "created" (unix seconds)
  // A request whose worker fails mid-stream with Unavailable (the worker died) goes on on
  // another worker, the tokens streamed so far appended to its prompt, at most this many times.
  int migration_limit = 2;
  // A worker that refuses as Unavailable leaves the routing; while discovery still lists it, it
  // comes back on probation after this long, doubling (up to 32x) each time it refuses again.
  int64_t worker_retry_ms = 1000;
  // Disaggregated serving: the longest uncached prompt a decode worker prefills itself when a
  // prefill worker is registered; longer ones are prefilled remotely. 0: always locally.
  int32_t max_local_prefill_tokens = 512;
  router::RouterOptions prefill_router;  // chooses among the prefill workers
};

struct BackendPlanes {
  runtime::RequestPlane* requests = nullptr;
  runtime::Discovery* discovery = nullptr;
  runtime::EventPlane* events = nullptr;
};

class EngineBackend : public ServingBackend {
 public:
  // `chat_template` may be null (renderChat is then InvalidArgument). InvalidArgument when a
  // required option, the tokenizer, the router or a plane is missing.
  static Result<std::shared_ptr<EngineBackend>> create(
      EngineBackendOptions options, std::shared_ptr<const model::Tokenizer> tokenizer,
      std::shared_ptr<const model::ChatTemplate> chat_template,
      std::shared_ptr<router::Router> router, BackendPlanes planes);
  ~EngineBackend() override;

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

  // Workers the backend can route requests to now (prefill workers not counted).
  size_t numWorkers() const;
  size_t numPrefillWorkers() const;
  // Prompt tokens of the finished requests that reported usage, and how many of them were cached.
  std::pair<int64_t, int64_t> promptAndCachedTokens() const {
    return {prompt_tokens_.load(std::memory_order_relaxed), cached_tokens_.load(std::memory_order_relaxed)};
  }

 private:
  struct WorkerEntry {
    runtime::WorkerRecord record;
    std::shared_ptr<runtime::WorkerClient> client;
    kv::LoadMetrics load;
  };
  struct Routed {
    std::shared_ptr<runtime::WorkerClient> client;
    int32_t overlap_blocks = 0;
    kv::WorkerId worker = 0;
    std::string role;
  };
  static constexpr int kMaxRouteAttempts = 3;
  static constexpr kv::WorkerId kNoWorker = ~kv::WorkerId{0};
  struct InFlight {
    std::shared_ptr<runtime::WorkerClient> client;  // null while migrating between workers
    std::shared_ptr<runtime::WorkerClient> prefill_client;  // while its prefill leg runs
    bool aborted = false;    // abort() came before the worker admitted it
    bool migrating = false;  // its worker failed; the next one is being chosen
  };
  // One client request across the workers that serve it (more than one after a migration).
  struct Migration {
    GenerateRequest original;
    ChunkSink sink;
    std::vector<int32_t> generated;  // tokens delivered to the sink so far
    int migrations = 0;
    bool local_prefill_only = false;  // a decode leg was refused: no more prefill legs
    std::atomic<bool> remote_prefill{false};  // its decode leg imports a prefill worker's blocks
  };

  EngineBackend(EngineBackendOptions options, std::shared_ptr<const model::Tokenizer> tokenizer,
                std::shared_ptr<const model::ChatTemplate> chat_template,
                std::shared_ptr<router::Router> router, BackendPlanes planes);
  void wire();
  // Block hashes, a route, and the request registered as in flight on the chosen worker.
  Result<Routed> routeRequest(const GenerateRequest& request);
  // Routing + admission, up to kMaxRouteAttempts workers.
  Status admit(const std::shared_ptr<Migration>& m);
  // One routing + admission attempt; on a refusal by a worker, *worker names it.
  Status tryGenerate(const std::shared_ptr<Migration>& m, kv::WorkerId* worker);
  // Sends the request to the routed worker (the whole request, or a decode leg); on a refusal
  // the request is no longer in flight and *worker names the worker.
  Status sendToWorker(const std::shared_ptr<Migration>& m, const Routed& routed, runtime::GenerateRequest request,
                      kv::WorkerId* worker);
  // Starts the prefill leg on a prefill worker; false when none takes it (prefill locally).
  bool startPrefillLeg(const std::shared_ptr<Migration>& m, const Routed& routed,
                       const runtime::GenerateRequest& request);
  // The prefill leg ended with `last`: the decode leg goes on (task thread).
  void finishPrefillLeg(const std::shared_ptr<Migration>& m, const Routed& routed, runtime::GenerateRequest request,
                        kv::WorkerId prefill_worker, runtime::GenerateChunk last);
  router::Router& routerFor(const std::string& role) { return role == "prefill" ? *prefill_router_ : *router_; }
  // The request to send now: the original, or after a migration its continuation.
  static GenerateRequest continuation(const Migration& m);
  // Called with a worker's Unavailable final chunk: false when the request may not migrate (the
  // chunk then ends it); true when it goes on elsewhere (the sink will get the rest).
  bool migrate(const std::shared_ptr<Migration>& m, kv::WorkerId worker, GenerationChunk& failed);
  void post(std::function<void()> task);  // runs on the backend's task thread
  void runTasks();
  // Takes a worker out of routing: until discovery changes its record or removes it, or until
  // its retry time (restoreSuspended() then puts it back on probation).
  void dropWorker(kv::WorkerId worker);
  void restoreSuspended();
  // Out of routing until worker_retry_ms << strikes from now (mu_ held).
  void suspendLocked(const runtime::WorkerRecord& rec);
  // Puts a worker's record into routing (connect, workers_, router). False when unreachable.
  bool addRecord(const runtime::WorkerRecord& rec);
  void onDiscovery(const runtime::DiscoveryEvent& event);
  // The kv router's metrics in Prometheus text, labelled with the model ("" for other policies).
  std::string routerMetrics() const;
  void onEvent(const runtime::EventPayload& payload);
  // Called once per request with its final chunk, before the sink sees it. The kv router's
  // accuracy is told the cached tokens unless the blocks came from a prefill worker
  // (`router_usage` false: the router predicted the decode worker's own cache).
  void finishRequest(const std::string& request_id, const GenerationChunk& final_chunk,
                     int32_t prompt_tokens, bool router_usage = true);
  runtime::GenerateRequest toRuntimeRequest(GenerateRequest&& request, int32_t overlap_blocks) const;

  EngineBackendOptions options_;
  std::shared_ptr<const model::Tokenizer> tokenizer_;
  std::shared_ptr<const model::ChatTemplate> template_;
  std::shared_ptr<router::Router> router_;
  router::KvRouter* kv_router_ = nullptr;  // router_ when it is the KV-aware one (usage, prefill done)
  std::shared_ptr<router::Router> prefill_router_;  // the prefill workers
  // A prefill worker was ever added: KV event messages need the role lookup (else they go to
  // router_ without taking mu_, as before disaggregation).
  std::atomic<bool> any_prefill_{false};
  BackendPlanes planes_;
  runtime::WatchId watch_ = 0;
  std::vector<runtime::SubscriptionId> subscriptions_;

  mutable std::mutex mu_;  // guards workers_, requests_, block_size_
  std::map<kv::WorkerId, WorkerEntry> workers_;
  struct Suspended {
    runtime::WorkerRecord record;
    std::chrono::steady_clock::time_point retry_at;
  };
  std::map<kv::WorkerId, Suspended> suspended_;
  std::map<kv::WorkerId, int> strikes_;  // refusals since discovery last changed the record
  std::atomic<bool> any_suspended_{false};
  std::unordered_map<std::string, InFlight> requests_;
  int32_t block_size_ = 16;  // of the workers (the first record's)

  std::mutex tasks_mu_;  // guards tasks_, tasks_stop_, task_thread_ start
  std::condition_variable tasks_cv_;
  std::deque<std::function<void()>> tasks_;
  bool tasks_stop_ = false;
  std::thread task_thread_;
  std::atomic<int64_t> migrations_{0};
  std::atomic<int64_t> remote_prefills_{0};   // decode legs sent with a prefill worker's blocks
  std::atomic<int64_t> prefill_fallbacks_{0};  // prefill legs that failed: prefilled locally

  std::atomic<int64_t> prompt_tokens_{0};  // of finished requests with usage
  std::atomic<int64_t> cached_tokens_{0};
};

// A Prometheus label value: backslash, quote and newline escaped.
std::string prometheusLabel(const std::string& value);

// GenerationChunk of a request-plane chunk (exposed for tests).
GenerationChunk toGenerationChunk(runtime::GenerateChunk&& chunk);

}  // namespace turbine::frontend
