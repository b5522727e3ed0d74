// Request and Output: what callers hand the engine and what it streams back (issue 3 §1,
// DESIGN.md §3.4). Plain values; validation happens in Engine::add (validateRequest in
// scheduler.h), which names the offending field.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "kv/block_hash.h"
#include "structured/constraint.h"

namespace turbine::engine {

using RequestId = std::string;

// Sampling, as vLLM defines each knob. Order of application: min_tokens suppression, logit_bias,
// repetition penalty, frequency/presence penalties, then (unless greedy) temperature, min_p,
// top_k, top_p.
struct SamplingParams {
  float temperature = 1.0f;        // < 1e-5 (e.g. 0) means greedy: argmax of processed logits
  float top_p = 1.0f;              // (0, 1]; 1 = off
  int32_t top_k = 0;               // 0 or -1 = off; top_k = 1 is greedy
  float min_p = 0.0f;              // [0, 1]; drop tokens with p < min_p * max p
  std::optional<uint64_t> seed;    // set: sampling is reproducible whatever the batch
  float repetition_penalty = 1.0f; // > 0; for tokens in prompt+output: l > 0 ? l / p : l * p
  float presence_penalty = 0.0f;   // [-2, 2]; l -= p if the token occurs in the output
  float frequency_penalty = 0.0f;  // [-2, 2]; l -= p * count of the token in the output
  std::unordered_map<int32_t, float> logit_bias;  // token id -> added to its logit
  bool logprobs = false;           // return the chosen token's logprob (raw log-softmax)
  int32_t top_logprobs = 0;        // and the N most likely tokens' (0..kMaxTopLogprobs)
  // Set: the logprob of every prompt token after the first under the model (and the N most
  // likely tokens' at its position, N = the value, 0..kMaxTopLogprobs), as vLLM's
  // prompt_logprobs. The prompt is then computed from its first token (the prefix cache cannot
  // give logits), in chunks of at most kMaxPromptLogitRows tokens a step.
  std::optional<int32_t> prompt_logprobs;
};

inline constexpr int32_t kMaxTopLogprobs = 20;
// Prompt logprobs: logits rows a step may hold for them, rows x vocab <= this many floats
// (64 MiB; 512 rows at a 32k vocabulary, 128 at 128k), and never fewer than 16 rows.
inline constexpr int64_t kMaxPromptLogitFloats = int64_t{16} << 20;

struct StopParams {
  std::optional<int32_t> max_tokens;   // unset: up to max_model_len - prompt length
  std::vector<int32_t> stop_token_ids; // finish with kStop after emitting one of these
  bool ignore_eos = false;             // do not stop at the engine's EOS token ids
  int32_t min_tokens = 0;              // EOS and stop tokens are suppressed until this many
};

// KV blocks copied out of one engine and into another (disaggregated serving: a prefill worker's
// blocks, moved to the decode worker by src/transfer). Block i holds the K/V of the block whose
// hash (DESIGN.md §3.1) is hashes[i], in the runner's layout (ModelRunner::readBlock).
struct KvBlocks {
  size_t block_bytes = 0;
  std::vector<kv::BlockHash> hashes;
  std::vector<uint8_t> data;  // hashes.size() * block_bytes bytes
};

struct Request {
  RequestId request_id;
  std::vector<int32_t> token_ids;  // the prompt, already tokenized
  SamplingParams sampling;
  StopParams stop;
  int32_t n = 1;           // parallel samples; they share the prompt's KV blocks
  std::string cache_salt;  // keeps tenants' prefix caches apart (DESIGN.md §3.1 salt)
  // Structured output: every sample's tokens spell a prefix of a sentence of the constraint,
  // and EOS / stop tokens come only once it is complete (engine/guided.h).
  std::optional<structured::OutputConstraint> constraint;
  // Blocks of this prompt computed elsewhere (a run of its chain, in order; disaggregated
  // serving). The first admission writes them into the pool as prefix hits instead of computing
  // them (counted in cached_tokens), then drops them. A run that is not of the prompt's chain,
  // or in another layout (block size, KV dtype), is ignored: those blocks get computed.
  std::shared_ptr<const KvBlocks> kv_import;
};

enum class FinishReason { kNone = 0, kStop, kLength, kAbort };

inline const char* finishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
  }
  return "unknown";
}

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// Logprobs of one generated position: the chosen token and the top-N alternatives (most likely
// first). Values are log-softmax of the RAW model logits (before penalties, bias, temperature),
// like vLLM's default.
struct PositionLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
  int32_t rank = 1;  // of `chosen`: 1 + the number of tokens with a higher logit
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;  // prompt tokens served from the prefix cache on first admission
  int32_t completion_tokens = 0;
};

// One chunk of one sample's stream. The last chunk of a sample has finish_reason != kNone and
// usage set. A stop token that ends a sample is included in token_ids (as vLLM does).
struct Output {
  RequestId request_id;
  int32_t index = 0;  // which of the request's n samples; -1: the request as a whole failed
  std::vector<int32_t> token_ids;
  std::vector<PositionLogprobs> logprobs;  // one per token when sampling.logprobs
  // sampling.prompt_logprobs: the prompt's tokens 1..n-1 (position p scores token p), in the
  // first chunk of sample 0 (with its first token, or its end when it ends before one).
  std::optional<std::vector<PositionLogprobs>> prompt_logprobs;
  FinishReason finish_reason = FinishReason::kNone;
  std::optional<Usage> usage;
  Status status;  // not OK when the request failed (finish_reason is then kAbort)
  bool finished() const { return finish_reason != FinishReason::kNone; }
};

// Called on the engine's step-loop thread: must be quick and must not block (hand the chunk to
// a queue). It may call Engine::abort (which only posts a message).
using OutputCallback = std::function<void(Output&&)>;

}  // namespace turbine::engine
