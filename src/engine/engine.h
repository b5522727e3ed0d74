// Engine: serves many requests at once over one ModelRunner (issue 3).
//
// One thread, the step loop, owns the Scheduler, the BlockPool and the runner. Other threads
// call add()/abort()/subscribeKvEvents()/resetPrefixCache(), which only validate and post a
// message to the loop's inbox; the loop drains the inbox between steps (the only lock it takes),
// runs a step, delivers outputs and KV events through callbacks ON THE LOOP THREAD, and sleeps
// when it has nothing to do. Callbacks must be quick and must not block; they may call abort().
//
// Admission: add() validates the request against the model (InvalidArgument naming the field;
// a prompt too long names both lengths) and refuses at once with ResourceExhausted when
// max_waiting requests are already waiting.
//
// Shutdown: shutdown(kDrain) finishes everything in flight; shutdown(kAbort) (and the
// destructor) ends every request with finish_reason kAbort. Either way every callback of an
// accepted request sees its final chunk, and add() afterwards returns Unavailable.
// Thread safety: every public method is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/status.h"
#include "engine/batch.h"
#include "engine/guided.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "kv/block_manager.h"
#include "kv/kv_events.h"

namespace turbine::engine {

// KV tiers below the runner's pool (kv/block_manager.h): blocks the pool evicts are kept here
// and copied back for a later prefix hit. Sizes in bytes, whole blocks of the runner's
// blockBytes(); 0: no such tier. Needs prefix caching and a runner that copies blocks.
struct KvTierOptions {
  size_t host_bytes = 0;
  size_t disk_bytes = 0;
  std::string disk_dir;  // the disk tier's file goes here (required with disk_bytes)
};

struct EngineOptions {
  std::string model_id;                   // block-hash root (DESIGN.md §3.1)
  kv::WorkerId worker_id = 0;             // names this engine in KV event messages
  int32_t max_num_batched_tokens = 2048;  // per step, decodes + prefill chunks
  int32_t max_num_seqs = 256;             // running sequences at most
  int32_t max_waiting = 1024;             // requests waiting for admission at most
  bool enable_prefix_caching = true;
  std::vector<int32_t> eos_token_ids;     // the model's EOS ids (from its generation config)
  // The vocabulary's token bytes (tokenTrieFor); requests with a constraint are refused without.
  std::shared_ptr<const structured::TokenTrie> token_trie;
  KvTierOptions kv_tiers;
  // The block size is the runner's blockSize(); the pool is [0, runner.numBlocks()).
};

// A snapshot. Rates are over the interval since the previous stats() call (or the start).
struct EngineStats {
  int32_t running = 0;                 // sequences in the running batch
  int32_t waiting = 0;                 // requests not yet admitted (queued included)
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_used = 0;          // referenced by a sequence
  int32_t kv_blocks_cached_free = 0;   // unreferenced, holding a hash; reusable or evictable
  int64_t kv_host_blocks_total = 0;    // tiers below the pool (KvTierOptions), blocks
  int64_t kv_host_blocks_used = 0;
  int64_t kv_disk_blocks_total = 0;
  int64_t kv_disk_blocks_used = 0;
  int64_t kv_blocks_offloaded = 0;     // cumulative: blocks copied from the pool to a tier
  int64_t kv_blocks_onboarded = 0;     // cumulative: blocks copied back from a tier
  int64_t kv_blocks_imported = 0;      // cumulative: blocks of requests' kv_import taken
  int64_t kv_blocks_exported = 0;      // cumulative: blocks copied out by exportBlocks()
  double prefix_cache_hit_rate = 0;    // cached prompt tokens / prompt tokens, since start
  double steps_per_s = 0;
  double prefill_tokens_per_s = 0;     // prompt + recompute tokens computed per second
  double decode_tokens_per_s = 0;      // single-token decode steps per second, summed over seqs
  double overhead_us_per_step = 0;     // step-loop time outside forward() / steps
  int64_t steps = 0;                   // cumulative from here on
  int64_t prefill_tokens = 0;
  int64_t decode_tokens = 0;
  int64_t preemptions = 0;
  int64_t finished_requests = 0;
};

using KvEventCallback = std::function<void(const kv::KvEventMessage&)>;

// A blocking stream of one request's chunks (all samples interleaved), for callers that
// prefer pulling to callbacks.
class OutputStream {
 public:
  explicit OutputStream(int32_t num_samples) : live_(num_samples) {}
  // Blocks for the next chunk; nullopt once every sample has finished.
  std::optional<Output> next();
  void push(Output&& out);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Output> queue_;
  int32_t live_;
};

class Engine {
 public:
  enum class ShutdownMode { kDrain, kAbort };

  // Starts the step loop. InvalidArgument when the runner or options make no sense.
  static Result<std::unique_ptr<Engine>> create(std::unique_ptr<ModelRunner> runner,
                                                EngineOptions options);
  ~Engine();  // shutdown(kAbort)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; its chunks go to `callback` on the loop thread. Errors at once:
  // InvalidArgument (bad field, too long), ResourceExhausted (queue full), Unavailable (shut
  // down). A duplicate live request_id is reported through the callback (kAbort + AlreadyExists).
  Status add(Request request, OutputCallback callback);
  Result<std::shared_ptr<OutputStream>> addStream(Request request);
  // Ends the request with kAbort and frees its blocks; unknown ids are ignored.
  void abort(const RequestId& id);
  // Receives every KV event message from now on, on the loop thread.
  void subscribeKvEvents(KvEventCallback callback);
  // Forgets every cached block hash (emits cleared).
  void resetPrefixCache();
  // Copies the leading run of `hashes` that the KV pool or its tiers hold, between two steps
  // (disaggregated serving: a prefill worker's blocks for a decode worker). `done` runs on the
  // loop thread, or at once with Unavailable when the engine is shut down.
  using ExportCallback = std::function<void(Result<KvBlocks>)>;
  void exportBlocks(std::vector<kv::BlockHash> hashes, ExportCallback done);
  EngineStats stats();
  // Blocks until the loop has processed everything posted before this call.
  void sync();
  void shutdown(ShutdownMode mode);

  RequestLimits limits() const { return limits_; }
  int32_t blockSize() const { return limits_.block_size; }

 private:
  struct AddMsg {
    Request request;
    OutputCallback callback;
    std::shared_ptr<GuidedGrammar> guided;  // the request's compiled constraint, if any
  };
  struct AbortMsg {
    RequestId id;
  };
  struct SubscribeMsg {
    KvEventCallback callback;
  };
  struct ResetMsg {};
  struct SyncMsg {
    std::function<void()> done;
  };
  struct ExportMsg {
    std::vector<kv::BlockHash> hashes;
    ExportCallback done;
  };
  using Message = std::variant<AddMsg, AbortMsg, SubscribeMsg, ResetMsg, SyncMsg, ExportMsg>;

  Engine(std::unique_ptr<ModelRunner> runner, EngineOptions options,
         std::unique_ptr<kv::KvBlockManager> block_manager);
  // False (message not queued) once the loop has exited.
  bool post(Message msg);
  void loop();
  void handle(Message& msg);
  void closeInbox();
  void publishKvEvents();
  void publishStats();

  EngineOptions options_;
  std::unique_ptr<ModelRunner> runner_;
  RequestLimits limits_;
  std::unique_ptr<GuidedDecoding> guided_;  // set when options_.token_trie is
  std::unique_ptr<kv::KvBlockManager> block_manager_;  // set when options_.kv_tiers asks for one
  std::unique_ptr<Scheduler> scheduler_;  // loop thread only
  std::vector<KvEventCallback> kv_subscribers_;  // loop thread only
  uint64_t kv_seq_ = 0;                          // loop thread only

  std::mutex mu_;  // guards inbox_, stop_
  std::condition_variable cv_;
  std::vector<Message> inbox_;
  std::optional<ShutdownMode> stop_;
  bool closed_ = false;  // the loop has exited; posts are refused
  std::atomic<bool> accepting_{true};
  std::atomic<int32_t> queued_adds_{0};
  std::mutex shutdown_mu_;
  std::thread thread_;

  // Published by the loop after each step (relaxed), read by stats().
  std::atomic<int32_t> st_running_{0}, st_waiting_{0}, st_used_{0}, st_cached_free_{0};
  std::atomic<int64_t> st_steps_{0}, st_prefill_{0}, st_decode_{0}, st_preempt_{0},
      st_finished_{0}, st_looked_up_{0}, st_cached_{0}, st_loop_ns_{0}, st_forward_ns_{0},
      st_host_used_{0}, st_disk_used_{0}, st_offloaded_{0}, st_onboarded_{0},
      st_imported_{0}, st_exported_{0};

  std::mutex stats_mu_;  // guards the previous snapshot used for rates
  EngineStats prev_stats_;
  int64_t prev_loop_ns_ = 0, prev_forward_ns_ = 0;
  std::chrono::steady_clock::time_point prev_time_;
};

}  // namespace turbine::engine
