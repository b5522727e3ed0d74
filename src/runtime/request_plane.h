// Request plane (DESIGN.md §3.4): how a router-side caller hands a tokenized request to a worker
// and gets its tokens back as a stream of chunks.
//   Generate(request) -> chunks, Abort(request_id), Health().
// Token ids in, token ids out: stop *strings* stay in the frontend, stop *tokens* in the engine.
//
// WorkerClient is both sides of the plane: a worker implements it (the server side), and
// RequestPlane::connect() returns one that forwards to the worker named by an endpoint (the
// client side). The embedded default forwards in-process (in_process_request_plane.h); a gRPC
// implementation will forward over the network behind the same interface.
//
// Lifetime of one request: when generate() returns OK, `on_chunk` receives zero or more chunks
// and then exactly one chunk with finish != kNone (also after abort(), a worker shutdown, or a
// lost connection), after which it is dropped. Chunks of one request never overlap and arrive in
// order. They arrive on a thread of the implementation, so the callback must be quick and must
// not block. abort() of an unknown or finished id is a no-op.
// Thread safety: every method of every implementation is safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "structured/constraint.h"

namespace turbine::runtime {

struct SamplingOptions {
  float temperature = 1.0f;         // 0 = greedy
  float top_p = 1.0f;               // (0, 1]
  int32_t top_k = 0;                // 0 or -1 = off
  float min_p = 0.0f;               // [0, 1]
  std::optional<uint64_t> seed;     // set: reproducible whatever the batch
  float repetition_penalty = 1.0f;  // 1 = off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> added to its logit
  int32_t logprobs = -1;            // -1 = none; k >= 0: the chosen token's logprob + top k
  int32_t prompt_logprobs = -1;     // -1 = none; k >= 0: each prompt token's logprob + top k
};

struct StopOptions {
  std::optional<int32_t> max_tokens;    // unset: up to the context length
  std::vector<int32_t> stop_token_ids;  // finish with kStop after emitting one (it is included)
  bool ignore_eos = false;
  int32_t min_tokens = 0;               // EOS and stop tokens are suppressed until this many
};

// Disaggregated serving (DESIGN.md §4 step 3): a long prefill runs on a prefill worker, whose
// KV blocks the decode worker then fetches over the transfer plane (src/transfer) instead of
// computing them.
struct Disaggregation {
  // A prefill leg: the worker computes the prompt's KV (one token, which the caller discards)
  // and names in its final chunk's kv_address where the prompt's blocks can be fetched.
  bool prefill_only = false;
  // A decode leg: before admission, the worker fetches the prompt's blocks from this transfer
  // address (those past overlap_blocks); whatever cannot be fetched is computed as usual.
  std::string kv_address;
  bool operator==(const Disaggregation&) const = default;
};

struct GenerateRequest {
  std::string request_id;
  std::vector<int32_t> token_ids;  // the prompt
  SamplingOptions sampling;
  StopOptions stop;
  std::string cache_salt;          // DESIGN.md §3.1 salt
  int32_t overlap_blocks = 0;      // routing hint: prompt blocks the router expects cached there
  std::optional<structured::OutputConstraint> constraint;  // structured output, when asked
  Disaggregation disaggregation;
};

enum class FinishReason { kNone = 0, kStop, kLength, kAbort, kError };

struct TokenLogprobs {
  int32_t token_id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // best first
  int32_t rank = 1;  // of token_id (1 = most likely)
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;  // prompt tokens served from the prefix cache
  int32_t completion_tokens = 0;
};

// New tokens since the previous chunk. The final chunk has finish != kNone and, unless the
// request failed before it was admitted, usage.
struct GenerateChunk {
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // empty, or one per token id
  // sampling.prompt_logprobs: prompt tokens 1..n-1's, in the request's first chunk.
  std::optional<std::vector<TokenLogprobs>> prompt_logprobs;
  FinishReason finish = FinishReason::kNone;
  Status error;                         // not OK exactly when finish == kError
  std::optional<Usage> usage;
  std::string kv_address;               // final chunk of a prefill leg: its blocks' transfer address
};

using ChunkCallback = std::function<void(GenerateChunk&&)>;

class WorkerClient {
 public:
  virtual ~WorkerClient() = default;
  // Admits the request or refuses it at once: InvalidArgument (a field the worker rejects),
  // ResourceExhausted (its queue is full), Unavailable (shut down or unreachable).
  virtual Status generate(GenerateRequest request, ChunkCallback on_chunk) = 0;
  virtual void abort(const std::string& request_id) = 0;
  // OK while the worker admits requests.
  virtual Status health() = 0;
};

// Names workers by endpoint (the `endpoint` of their discovery record, DESIGN.md §3.5).
class RequestPlane {
 public:
  virtual ~RequestPlane() = default;
  // Worker side: serves `handler` at `endpoint`. AlreadyExists when the endpoint is taken.
  virtual Status serve(const std::string& endpoint, std::shared_ptr<WorkerClient> handler) = 0;
  // Worker side: stops serving. Clients connected to it get Unavailable from then on; requests
  // already admitted still finish through their callbacks.
  virtual void stopServing(const std::string& endpoint) = 0;
  // Caller side: NotFound when nothing serves `endpoint`.
  virtual Result<std::shared_ptr<WorkerClient>> connect(const std::string& endpoint) = 0;
};

const char* finishReasonName(FinishReason reason);

}  // namespace turbine::runtime
