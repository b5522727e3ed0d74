// GenerationJob: one chat or completions HTTP request in flight — its n (or prompts x n)
// sequences on the backend, their detokenizers and stop-string matchers, and the response
// (one JSON body, or an SSE stream). Created and driven on the connection's thread; backend
// chunks go through a small locked inbox and are posted to that thread, one post per batch
// of chunks (not per chunk), so no other member needs a lock.
// Lifetime: shared by the backend sinks (until each sequence's final chunk) and the connection.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "frontend/backend.h"
#include "frontend/http_server.h"
#include "frontend/metrics.h"
#include "frontend/openai_responses.h"
#include "frontend/reasoning.h"
#include "frontend/stop_strings.h"
#include "frontend/tool_calls.h"

namespace turbine::frontend {

enum class ApiKind { kChat, kCompletion };

// How a choice shows its prompt (completions' echo, prompt logprobs).
struct PromptDisplay {
  std::string echo;                   // text the choice begins with (completions' echo)
  bool echo_only = false;             // max_tokens 0 with echo: the generated token is dropped
  bool show_prompt_logprobs = false;  // the response carries "prompt_logprobs" (vLLM)
};

// Not owned: a job may outlive the server (a backend sink holds it until the final chunk), but
// it touches these only on the connection strand, which runs only while the server is up.
struct JobContext {
  ServingBackend* backend = nullptr;
  FrontendMetrics* metrics = nullptr;
  std::atomic<int64_t>* active_jobs = nullptr;
  int retry_after_s = 1;
};

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  GenerationJob(JobContext context, ApiKind kind, ResponseMeta meta, bool stream,
                bool include_usage, std::string endpoint,
                std::chrono::steady_clock::time_point received,
                std::shared_ptr<HttpResponder> responder);

  // Adds a sequence. `counts_prompt`: its prompt counts in usage.prompt_tokens (false for the
  // 2nd..nth sample of one prompt). With echo and logprobs the echo waits for the prompt's
  // logprobs (the first chunk) and carries them.
  void addSequence(GenerateRequest request, std::vector<std::string> stop, bool counts_prompt,
                   PromptDisplay display = {});
  // Chat with tool_choice "auto": each sequence's output is read for tool calls in `format`
  // (content streams up to where a call may begin; the calls come as one delta at the end, and
  // the choice finishes with "tool_calls"); `parallel` false keeps only a choice's first call.
  // Before addSequence().
  void readToolCalls(ToolCallFormat format, bool parallel) {
    tool_format_ = format;
    parallel_tool_calls_ = parallel;
  }
  // Chat with tool_choice "required" (`function` empty) or a named function: guided decoding
  // shapes the output as the calls (parseForcedToolCalls); it all comes as tool_calls at the
  // end, the choice finishing with the engine's reason, as vLLM does. Before addSequence().
  void readForcedToolCalls(std::string function) { forced_function_ = std::move(function); }
  // Chat with a reasoning parser: each sequence's reasoning goes to `reasoning_content` (streamed
  // as delta.reasoning_content), the rest is the answer. Before addSequence().
  void readReasoning(ReasoningFormat format) { reasoning_format_ = format; }
  // Token ids the detokenizer skips (special tokens) whose text a parser above needs: put back
  // into the text of sequences read for tool calls or reasoning.
  void putBackMarkers(std::vector<std::pair<int32_t, std::string>> markers) { markers_ = std::move(markers); }

  // Submits every sequence. On failure, already accepted ones are aborted and the error is
  // returned with nothing sent: the caller answers it. On success the job answers by itself.
  Status start();

 private:
  struct Sequence {
    std::string request_id;
    int32_t index = 0;
    int32_t prompt_tokens = 0;
    bool counts_prompt = true;
    bool want_logprobs = false;
    std::unique_ptr<IncrementalDetokenizer> detokenizer;
    StopStringMatcher stop;
    std::string text;                  // whole output (non-streaming)
    std::vector<LogprobEntry> logprobs;  // whole output (non-streaming)
    int64_t text_offset = 0;
    int32_t completion_tokens = 0;
    int64_t cached_tokens = 0;
    std::string finish;                // set once done
    bool submitted = false;
    std::chrono::steady_clock::time_point last_token;
    bool has_token = false;
    GenerateRequest pending;           // moved to the backend by start()
    DeltaEventFormat delta_format;     // streams: the plain delta event, rendered once
    std::string echo;                  // sent before the output (then cleared)
    bool echo_logprobs = false;        // echo waits for the prompt's logprobs
    int32_t top_logprobs = 0;          // the request's top-k
    bool echo_only = false;            // generated tokens are dropped (max_tokens 0)
    bool show_prompt_logprobs = false;
    int32_t first_prompt_token = 0;
    std::optional<std::vector<PromptLogprobPosition>> prompt_logprobs;  // show_prompt_logprobs
    std::optional<ReasoningStream> reasoning;  // readReasoning: the output's split
    std::string reasoning_text;                // whole reasoning (non-streaming)
    std::optional<ToolCallStream> tools;  // readToolCalls: the output's filter
    std::vector<ToolCall> tool_calls;     // found at the end (non-streaming)
  };

  // Backend thread: queues the chunk and posts a drain unless one is pending.
  void deliver(size_t i, GenerationChunk chunk);
  // Connection thread: handles every queued chunk in arrival order.
  void drainInbox();
  void onChunk(size_t i, GenerationChunk chunk);
  // The first chunk's prompt logprobs: kept for the response, and the deferred echo sent with them.
  void takePromptLogprobs(Sequence& s, std::vector<TokenLogprob>& prompt);
  // One token's logprob in text form (its piece, value, up to max_top alternatives); no offset.
  LogprobEntry logprobEntry(const TokenLogprob& lp, size_t max_top) const;
  void consumeTokens(Sequence& s, const GenerationChunk& chunk, std::string* text,
                     std::vector<LogprobEntry>* logprobs);
  // The text of a tool-call marker token the detokenizer would skip (readToolCalls), if `id` is one.
  std::optional<std::string> markerText(const Sequence& s, int32_t id) const;
  void emit(Sequence& s, const std::string& text, const std::vector<LogprobEntry>& logprobs);
  void emitReasoning(Sequence& s, const std::string& text);
  // emit() without the reasoning split and the tool-call filter.
  void emitContent(Sequence& s, const std::string& text, const std::vector<LogprobEntry>& logprobs);
  void finishSequence(Sequence& s, std::string reason);
  void fail(const Status& error);
  void complete();
  void onDisconnect();
  void release(int http_status);
  UsageInfo usage() const;

  JobContext ctx_;
  ApiKind kind_;
  ResponseMeta meta_;
  bool stream_;
  bool include_usage_;
  std::string endpoint_;
  std::chrono::steady_clock::time_point received_;
  std::shared_ptr<HttpResponder> responder_;
  std::vector<Sequence> seqs_;
  size_t done_ = 0;
  bool finished_ = false;  // the response is complete (or the client left)
  bool first_token_seen_ = false;
  std::string scratch_;  // one event being built; keeps its capacity between chunks
  std::optional<ToolCallFormat> tool_format_;
  std::optional<std::string> forced_function_;  // readForcedToolCalls
  bool parallel_tool_calls_ = true;
  std::optional<ReasoningFormat> reasoning_format_;
  std::vector<std::pair<int32_t, std::string>> markers_;

  std::mutex inbox_mu_;
  std::vector<std::pair<size_t, GenerationChunk>> inbox_;  // guarded by inbox_mu_
  bool drain_posted_ = false;                              // guarded by inbox_mu_
  std::vector<std::pair<size_t, GenerationChunk>> draining_;  // connection thread only
};

}  // namespace turbine::frontend
