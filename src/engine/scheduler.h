// Scheduler: iteration-level continuous batching over a BlockPool and a ModelRunner.
//
// Each step() takes a token budget (max_num_batched_tokens) and fills it with, in order:
//   1. every running decode (one token each), oldest request first;
//   2. prefill chunks of running sequences whose prompt is not computed yet (chunked prefill);
//   3. waiting sequences, FIFO, while max_num_seqs and blocks allow. A new sequence first reuses
//      every leading full block already in the prefix cache (always leaving at least its last
//      token to compute, for the logits).
// When a running sequence needs a block and none is available, the NEWEST running sequence is
// preempted: its blocks are released (committed ones stay cached) and it goes back to the front
// of the waiting queue to be recomputed later with its generated tokens kept. No new sequence is
// admitted in a step that preempted. A request is never dropped; a sequence that alone outgrows
// the whole pool finishes with kLength.
// n > 1: sample 0 prefills the prompt; the other samples start once it is computed and reuse
// its full blocks through the prefix cache (the partial last block is recomputed per sample).
// A request may bring some of its prompt's blocks computed elsewhere (Request::kv_import,
// disaggregated serving): its first admission continues the prefix past the pool's hits with
// them, written into fresh blocks like tier blocks, before it looks in the tiers.
// With a KV block manager (tiers below the pool, kv/block_manager.h): every block the pool
// evicts is offloaded to it first, and a new sequence's prefix continues past the pool's hits
// with the blocks the tiers hold, copied back into fresh blocks (onboarded) instead of computed.
//
// Thread safety: not thread-safe; owned by the engine's step loop. Output callbacks run inside
// step() and abort(), after the scheduler's state is consistent.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/batch.h"
#include "engine/block_pool.h"
#include "engine/guided.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "kv/block_hash.h"
#include "kv/block_manager.h"

namespace turbine::engine {

struct SchedulerOptions {
  std::string model_id;                   // part of the block-hash root (DESIGN.md §3.1)
  int32_t max_num_batched_tokens = 2048;  // tokens computed per step, decodes + prefill chunks
  int32_t max_num_seqs = 256;             // running sequences at most
  bool enable_prefix_caching = true;
  std::vector<int32_t> eos_token_ids;     // stop tokens unless a request sets ignore_eos
  std::shared_ptr<const structured::TokenTrie> token_trie;  // needed by guided requests
  // Host / disk tiers below the pool (not owned; outlives the scheduler). Needs prefix caching
  // and a runner whose blockBytes() is the manager's.
  kv::KvBlockManager* block_manager = nullptr;
  // When set, kept equal to numWaitingRequests() (relaxed stores), for other threads to read.
  std::atomic<int32_t>* waiting_gauge = nullptr;
};

// The limits a request is checked against.
struct RequestLimits {
  int32_t vocab_size = 0;
  int32_t max_model_len = 0;
  int32_t block_size = 0;
  int32_t num_blocks = 0;
  int32_t max_num_seqs = 0;
};

// InvalidArgument naming the first bad field (and both lengths for a too-long prompt).
Status validateRequest(const Request& request, const RequestLimits& limits);

// Cumulative counters since construction.
struct SchedulerCounters {
  int64_t steps = 0;
  int64_t prefill_tokens = 0;        // tokens computed as prompt (or recompute) chunks
  int64_t decode_tokens = 0;         // tokens computed as single-token decodes
  int64_t prompt_tokens_looked_up = 0;  // prompt tokens of first admissions
  int64_t prompt_tokens_cached = 0;     // of which served from the prefix cache (any tier)
  int64_t prompt_tokens_onboarded = 0;  // of which copied in: from the host / disk tiers or a kv_import
  int64_t blocks_onboarded = 0;         // blocks copied back from the tiers (recomputes too)
  int64_t blocks_imported = 0;          // blocks of requests' kv_import written into the pool
  int64_t blocks_import_skipped = 0;    // blocks of kv_import not used (off the prompt's chain,
                                        // another layout, or the pool or a tier had them)
  int64_t blocks_exported = 0;          // blocks copied out by exportBlocks()
  int64_t preemptions = 0;
  int64_t finished_requests = 0;
  int64_t forward_ns = 0;            // time inside ModelRunner::forward
};

class Scheduler {
 public:
  // `runner` must outlive the scheduler; its numBlocks() sizes the block pool.
  Scheduler(const SchedulerOptions& options, ModelRunner* runner);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request (already validated; `guided` is its compiled constraint, needed when it
  // has one). AlreadyExists when its id is live.
  Status add(Request request, OutputCallback callback, std::shared_ptr<GuidedGrammar> guided = nullptr);
  // Finishes every live sample of the request with kAbort (and `why` as its status). False
  // when the id is unknown (already finished).
  bool abort(const RequestId& id, Status why = Status::ok());
  void abortAll(const Status& why);

  // One iteration: schedule, forward, sample, commit blocks, emit outputs. On a forward error
  // the requests of the batch are aborted with it and the error is returned.
  Status step();

  bool hasWork() const { return !running_.empty() || !waiting_.empty(); }
  int32_t numRunning() const { return static_cast<int32_t>(running_.size()); }
  int32_t numWaiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t numWaitingRequests() const { return num_unadmitted_; }
  int32_t numRequests() const { return static_cast<int32_t>(groups_.size()); }
  const SchedulerCounters& counters() const { return counters_; }
  // Sequences and tokens of the last step's batch.
  int32_t lastBatchSeqs() const { return last_batch_seqs_; }
  int64_t lastBatchTokens() const { return last_batch_tokens_; }

  // Forgets every cached block, on the pool and on the tiers (one `cleared` event).
  void resetPrefixCache();

  // Copies the leading run of `hashes` that the pool or the tiers hold (disaggregated serving:
  // another engine continues from them). Empty when the runner cannot copy blocks.
  KvBlocks exportBlocks(std::span<const kv::BlockHash> hashes);

  BlockPool& pool() { return pool_; }
  const BlockPool& pool() const { return pool_; }
  RequestLimits limits() const { return limits_; }

 private:
  struct Group;
  struct Sequence;
  struct Planned {
    Sequence* seq;
    int32_t num_tokens;
    bool dropped;
    int32_t num_logits = 0;    // set by step()
    bool prompt_rows = false;  // its logits rows score prompt tokens (prompt logprobs)
  };

  void schedule();
  void scheduleRunning(bool decodes);
  void admitWaiting();
  bool ensureBlocks(Sequence* s, int32_t num_tokens);
  int32_t acquireCachedPrefix(Sequence* s);
  // Leading full blocks admission may take from the cache or the tiers: all but the last token,
  // and for prompt logprobs none past the first position still to be scored.
  int32_t maxPrefixHit(const Sequence* s) const;
  // Sample 0 of a request with prompt logprobs whose prompt is not all scored yet.
  bool needsPromptLogits(const Sequence* s) const;
  // Prefill tokens a step may give `s` (the prompt-logits row budget for those that need rows).
  int32_t chunkLimit(const Sequence* s, int32_t n) const;
  void recordPromptLogprobs(Sequence* s, int32_t start, int32_t rows, std::span<const float> logits);
  // Moves the finished prompt logprobs into sample 0's next output (once).
  void attachPromptLogprobs(Sequence* s, Output& out);
  // Leading blocks after the pool's `from` hits that the tiers hold (marked recently used).
  int32_t tieredPrefix(Sequence* s, int32_t from);
  // Copies up to `count` tier blocks into s's next allocated blocks and commits them; returns
  // how many (fewer when one is gone or a copy fails).
  int32_t onboard(Sequence* s, int32_t count);
  void offload(BlockId block, kv::BlockHash hash, std::optional<kv::BlockHash> parent);
  // Keeps a request's kv_import for its first admission when it is a run of the prompt's chain
  // in this runner's layout (else it is dropped and counted as skipped).
  void acceptImport(Group* g, std::shared_ptr<const KvBlocks> import, const std::vector<int32_t>& prompt);
  // The imported bytes of the prompt's block i, or null.
  const uint8_t* importedBlock(const Group* g, int32_t i) const;
  void dropImport(Group* g);  // after the first admission (or the end): frees the bytes
  void preempt(Sequence* s);
  void update(std::span<const float> logits);
  void commitFullBlocks(Sequence* s);
  void sampleNext(Sequence* s, std::span<const float> logits);
  // Fills allowed_ for a guided sequence; false when no token may be drawn (then the output is
  // complete when the matcher accepts, stuck otherwise).
  bool guidedMask(Sequence* s, size_t vocab);
  static bool isStopToken(const Group* g, int32_t token);
  FinishReason stopReason(const Sequence* s, int32_t token) const;
  void finishSeq(Sequence* s, FinishReason reason, Output out, Status status = Status::ok());
  void releaseSiblings(Group* g);
  void releaseBlocks(Sequence* s);
  void removeRunning(Sequence* s);
  void removeWaiting(Sequence* s);
  void deliver();
  void addUnadmitted(int32_t delta);

  SchedulerOptions options_;
  ModelRunner* runner_;
  RequestLimits limits_;
  BlockPool pool_;
  Sampler sampler_;
  std::unordered_map<RequestId, std::unique_ptr<Group>> groups_;
  std::vector<Sequence*> running_;  // ascending order key (oldest first)
  std::deque<Sequence*> waiting_;
  std::vector<Planned> plan_;
  int32_t budget_ = 0;
  int32_t prompt_rows_budget_ = 0;  // prompt-logits rows left in this step
  bool preempted_ = false;
  uint64_t next_order_ = 0;
  int32_t num_unadmitted_ = 0;
  std::vector<float> logits_;
  std::vector<uint64_t> allowed_;  // a guided sample's token mask, vocab bits
  std::vector<std::pair<Group*, Output>> outbox_;
  std::vector<RequestId> done_groups_;
  SchedulerCounters counters_;
  int32_t last_batch_seqs_ = 0;
  int64_t last_batch_tokens_ = 0;
};

}  // namespace turbine::engine
