// ServingBackend: what the HTTP frontend needs from the model side (tokenizer, chat template,
// engine or router), as one abstract interface. The frontend is written and tested against it
// before the real engine exists; `turbine serve` adapts Engine + Tokenizer + ChatTemplate to it.
//
// Threading: every method may be called from any frontend I/O thread, concurrently, so an
// implementation must be thread-safe. generate() must not block for long (it admits or rejects
// the request and returns); its outputs arrive later on the backend's own threads through the
// sink. The frontend posts each output to the owning connection's strand itself.
//
// Request lifetime: for every request that generate() accepted (returned OK), the sink receives
// zero or more chunks and then exactly one chunk with `finish` set — also after abort(). After
// the final chunk the backend drops its reference to the sink. abort() of an unknown or finished
// id is a no-op. Calls to one sink never overlap (chunks of one request are delivered in order).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "structured/constraint.h"

namespace turbine::frontend {

// One entry of GET /v1/models.
struct ModelCard {
  std::string id;                 // the served model name clients put in "model"
  std::string owned_by = "turbine";
  int64_t created = 0;            // unix seconds
  int32_t max_model_len = 4096;   // prompt + completion tokens must fit
  int32_t vocab_size = 0;         // token ids in prompts must be in [0, vocab_size); 0 = unchecked
};

// One chat message after validation. Content is either a plain string (has_parts == false) or
// an array of text parts (has_parts == true, `parts` holds the texts in order and `content`
// their concatenation) — templates may treat the two forms differently.
struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  std::vector<std::string> parts;
  bool has_parts = false;
  std::optional<std::string> name;
  std::optional<std::string> tool_call_id;  // role "tool": the call it answers
  // role "assistant": the calls it made, [{"id", "type", "function": {"name", "arguments"}}] with
  // each "arguments" an object where the client's string held one (as templates expect); null
  // when none. Keys in the client's order.
  nlohmann::ordered_json tool_calls;
};

// What a chat template sees besides the messages.
struct ChatTemplateArgs {
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;  // the request's tool definitions; null when none
  // More template variables: the request's chat_template_kwargs (enable_thinking, ...) and
  // documents. An object.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

// Sampling and stopping controls of one sequence (DESIGN.md §3.4). Stop *strings* stay in the
// frontend; only stop token ids reach the backend.
struct SamplingParams {
  double temperature = 1.0;         // 0 = greedy
  double top_p = 1.0;               // (0, 1]
  int32_t top_k = 0;                // 0 or -1 = disabled
  double min_p = 0.0;               // [0, 1]
  std::optional<int64_t> seed;      // unset = nondeterministic
  double presence_penalty = 0.0;    // [-2, 2]
  double frequency_penalty = 0.0;   // [-2, 2]
  double repetition_penalty = 1.0;  // > 0, 1 = off
  std::map<int32_t, float> logit_bias;  // token id -> bias in [-100, 100]
  int32_t logprobs = -1;            // -1 = none; k >= 0: chosen token's logprob + top k
  // -1 = none; k >= 0: every prompt token's logprob after the first, + top k (the prompt is then
  // computed whole: the prefix cache holds no logits).
  int32_t prompt_logprobs = -1;
};

struct StopParams {
  int32_t max_tokens = 16;          // completion tokens, >= 1 (the frontend fills the default)
  int32_t min_tokens = 0;           // EOS and stop tokens are suppressed before this many
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
};

struct GenerateRequest {
  std::string request_id;           // unique per sequence ("chatcmpl-...-0")
  std::string model;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams sampling;
  StopParams stop;
  std::string cache_salt;           // keeps tenants' prefix caches apart (DESIGN.md §3.1)
  // Structured output: the tokens must spell what the constraint allows (the engine masks them).
  std::optional<structured::OutputConstraint> constraint;
};

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // best first, size <= requested k
  int32_t rank = 1;  // of token_id (1 = most likely)
};

// One output of a running request. Tokens are new since the previous chunk.
struct GenerationChunk {
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;  // empty, or one per token id when logprobs were asked
  // sampling.prompt_logprobs: the prompt's tokens 1..n-1, in the request's first chunk.
  std::optional<std::vector<TokenLogprob>> prompt_logprobs;
  FinishReason finish = FinishReason::kNone;
  Status error;                          // set when finish == kError
  std::optional<int32_t> cached_tokens;  // prompt tokens served from the prefix cache, if known
};

// Receives the outputs of one request, on a backend thread.
using ChunkSink = std::function<void(GenerationChunk)>;

// Turns token ids back into text one token at a time, never splitting a UTF-8 character:
// push() returns only text that is complete, flush() whatever is left at the end.
class IncrementalDetokenizer {
 public:
  virtual ~IncrementalDetokenizer() = default;
  virtual std::string push(int32_t token_id) = 0;
  virtual std::string flush() = 0;
};

// Engine-wide numbers for /metrics (DESIGN.md §3.3).
struct BackendStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_host_blocks_total = 0;  // KV tiers below the workers' pools (--kv-host-cache, ...)
  int64_t kv_host_blocks_used = 0;
  int64_t kv_disk_blocks_total = 0;
  int64_t kv_disk_blocks_used = 0;
  double prefix_cache_hit_rate = 0.0;  // hit tokens / queried prompt tokens, in [0, 1]
  // More Prometheus text exposition lines (router and event-plane metrics of a fleet
  // frontend), appended to /metrics as they are; "" or complete lines ending in '\n'.
  std::string extra_metrics;
};

class ServingBackend {
 public:
  virtual ~ServingBackend() = default;

  virtual std::vector<ModelCard> models() const = 0;

  // Renders the model's chat template. A template's raise_exception is InvalidArgument with its
  // message (the frontend answers 400 with it).
  virtual Result<std::string> renderChat(const std::string& model, const std::vector<ChatMessage>& messages,
                                         const ChatTemplateArgs& args) = 0;

  // add_special_tokens: prepend BOS etc. (true for raw completions prompts, false for rendered
  // chat text, whose template already wrote them).
  virtual Result<std::vector<int32_t>> tokenize(const std::string& model, const std::string& text,
                                                bool add_special_tokens) = 0;
  virtual Result<std::string> detokenize(const std::string& model,
                                         const std::vector<int32_t>& token_ids) = 0;
  virtual std::unique_ptr<IncrementalDetokenizer> newDetokenizer(const std::string& model) = 0;

  // The raw bytes of one token (for logprobs "token"/"bytes"); may be a partial UTF-8 sequence.
  virtual std::string tokenPiece(const std::string& model, int32_t token_id) = 0;

  // Admits a request. ResourceExhausted (queue full; answered 429) and Unavailable (answered
  // 503) are normal outcomes; InvalidArgument is answered 400. On OK see the lifetime contract.
  virtual Status generate(GenerateRequest request, ChunkSink sink) = 0;
  virtual void abort(const std::string& request_id) = 0;

  virtual Status health() = 0;
  virtual BackendStats stats() = 0;
};

}  // namespace turbine::frontend
