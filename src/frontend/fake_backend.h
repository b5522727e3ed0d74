// FakeBackend: a ServingBackend with no model, for tests, benchmarks and demos of the frontend.
// Tokens are bytes (id b = byte b), plus EOS = 256 ("</s>") and BOS = 257 ("<s>"). A request
// "generates" options.script (repeated, starting at offset seed % script length) one token per
// token_interval on one producer thread; it finishes with
// "length" at max_tokens, with "stop" at a stop token id or (eos_after_script) at the script's
// end unless ignore_eos. The chat "template" writes "<|role|>content\n" per message and
// "<|assistant|>" for the generation prompt (tools: a first line "<|tools|>" + their JSON; more
// template variables: a line "<|context|>" + their JSON object; a
// tool message's call id in brackets after its role, an assistant's tool calls as JSON after
// its content); a message whose content is "RAISE_EXCEPTION" makes it
// fail with InvalidArgument, as a template's raise_exception would.
// Phases: kLockstep ticks every request at the same instant (start + k*interval: the worst case
// for the frontend, like one engine handing a whole batch over at once); kStaggered gives the
// i-th admitted request the phase offset (i mod phase_slots) * interval / phase_slots, so the
// requests tick at the same fixed rate with phases spread uniformly over the interval (like a
// fleet of engines with many batches). Either way a request's first token comes at its phase's
// next tick after admission, within one interval. The producer wakes only at ticks of slots that
// hold a request (at most phase_slots wake-ups per interval; phase_slots is capped so a slot is at
// least 1 us apart).
// Thread safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "frontend/backend.h"

namespace turbine::frontend {

enum class FakePhases { kLockstep, kStaggered };

struct FakeBackendOptions {
  std::string model = "fake-model";
  int32_t max_model_len = 2048;
  std::chrono::microseconds token_interval{1000};
  std::string script = "Hello world! ";
  bool eos_after_script = false;
  // More tokens, ids kVocabSize + i: special ones, as a real tokenizer's added special tokens
  // ([TOOL_CALLS], <|python_tag|>): matched whole by tokenize() (the script's too), skipped by
  // the incremental detokenizer, written by detokenize() and tokenPiece().
  std::vector<std::string> special_tokens;
  int64_t max_running = -1;      // -1 = unlimited; more running -> ResourceExhausted
  bool unavailable = false;      // generate() -> Unavailable
  int32_t cached_tokens = 0;     // reported as prefix-cache hits on the first chunk
  bool record_emit_times = false;  // keep each token's emit time (see emitTimes())
  FakePhases phases = FakePhases::kLockstep;
  int32_t phase_slots = 100;       // kStaggered: distinct phases per interval (>= 1)
  std::string thread_name = "fake-backend";  // of the producer thread (benchmarks tell CPU apart)
};

class FakeBackend : public ServingBackend {
 public:
  static constexpr int32_t kEos = 256;
  static constexpr int32_t kBos = 257;
  static constexpr int32_t kVocabSize = 258;

  explicit FakeBackend(FakeBackendOptions options);
  ~FakeBackend() override;

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
  Status health() override { return Status::ok(); }
  BackendStats stats() override;

  // Test hooks.
  void setMaxRunning(int64_t n);
  void setUnavailable(bool v);
  std::vector<std::string> aborted() const;
  // Waits until `request_id` was aborted (true) or the timeout passed (false).
  bool waitAborted(const std::string& request_id, std::chrono::milliseconds timeout) const;
  std::vector<GenerateRequest> received() const;
  size_t running() const;
  // Emit times of every token of `request_id` (record_emit_times only): the instant the tick's
  // chunks (of every stream in the tick's phase slot) were ready, just before the first sink of
  // the tick was called (so the time the frontend's sinks take counts as frontend time, the
  // producer's own work does not).
  std::vector<std::chrono::steady_clock::time_point> emitTimes(const std::string& request_id) const;

 private:
  struct Active {
    GenerateRequest request;
    ChunkSink sink;
    size_t pos = 0;          // next script token
    int32_t produced = 0;
    bool aborted = false;
    bool first = true;
    std::vector<uint32_t> emit_ticks;  // record_emit_times: index in tick_times_ per token
  };
  using Clock = std::chrono::steady_clock;
  void run();
  // Steps every request of phase slot `slot` (under mu_), appending their chunks to `out`.
  void tickSlot(size_t slot, std::vector<std::pair<ChunkSink, GenerationChunk>>* out);
  // The first tick index >= `from` whose slot holds a request, or -1 when none does (under mu_).
  int64_t nextBusyTick(int64_t from) const;
  Clock::time_point tickTime(int64_t tick) const;
  size_t activeCount() const;  // under mu_
  // Produces the next chunk of `a`; returns true when it was the final one.
  bool step(Active& a, GenerationChunk* chunk);

  std::vector<int32_t> script_ids_;  // options_.script as tokens
  FakeBackendOptions options_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  // Requests by phase slot (one slot in kLockstep); tick t serves slot t % slots_.size() at
  // tickTime(t). Guarded by mu_.
  std::vector<std::deque<Active>> slots_;
  uint64_t admitted_ = 0;  // requests admitted so far (picks the slot; wakes the producer)
  Clock::time_point start_;
  int64_t interval_ns_ = 0;
  std::vector<std::string> aborted_;
  std::vector<GenerateRequest> received_;
  // record_emit_times: when each tick's chunks were ready, and the ticks of finished requests.
  std::vector<std::chrono::steady_clock::time_point> tick_times_;
  std::unordered_map<std::string, std::vector<uint32_t>> emit_ticks_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace turbine::frontend
