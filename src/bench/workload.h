// Workloads: the sources of requests for a bench run.
//  - synthetic: input/output lengths from distributions, optional Poisson arrivals (rate), and a
//    shared prefix (a fraction of every prompt is the same tokens);
//  - trace: Mooncake / Azure records replayed at their timestamps (scaled), Mooncake hash_ids
//    mapped to 512-token blocks so equal ids give equal blocks;
//  - multiturn: N users, each a conversation that grows turn by turn (needs the chat endpoint;
//    the assistant's real reply is appended before the next turn).
// Thread safety: none; the runner calls a workload from its one event-loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_types.h"
#include "bench/prompt.h"
#include "bench/trace_reader.h"
#include "common/status.h"

namespace turbine::bench {

// A length distribution. Text forms: "N" or "fixed:N", "uniform:LO:HI" (inclusive),
// "normal:MEAN:STDDEV" (rounded, clamped to >= 1).
struct LengthDist {
  enum class Kind { kFixed, kUniform, kNormal };
  Kind kind = Kind::kFixed;
  double a = 128.0;
  double b = 0.0;
  int32_t sample(std::mt19937_64& rng) const;
  std::string toString() const;
};
Result<LengthDist> parseLengthDist(const std::string& text);

class Workload {
 public:
  virtual ~Workload() = default;
  // The next request, or nullopt when none is ready now; done() says whether more will come.
  virtual std::optional<RequestSpec> next() = 0;
  virtual bool done() const = 0;
  // Called once per finished request (ok or failed), in completion order.
  virtual void onComplete(const RequestSpec& spec, const RequestResult& result) {
    (void)spec;
    (void)result;
  }
  // Total number of requests, -1 when unbounded (ended by the run's duration).
  virtual int64_t total() const = 0;
  // Whether results must carry the generated text (multiturn).
  virtual bool needsOutputText() const { return false; }
};

struct SyntheticOptions {
  int64_t requests = 100;       // -1: unbounded
  LengthDist input{LengthDist::Kind::kFixed, 128, 0};
  LengthDist output{LengthDist::Kind::kFixed, 128, 0};
  double rate = 0.0;            // requests/s, Poisson arrivals; 0: no arrival times (closed loop)
  double shared_prefix = 0.0;   // fraction in [0, 1] of each prompt that is one shared prefix
  uint64_t seed = 0;
};
std::unique_ptr<Workload> makeSyntheticWorkload(const SyntheticOptions& options);

struct TraceWorkloadOptions {
  double time_scale = 1.0;    // arrival = timestamp * time_scale / rate_scale
  double rate_scale = 1.0;
  int64_t max_requests = -1;  // -1: the whole trace
  int32_t max_input_len = 0;  // > 0: prompts are truncated to this many tokens
  int32_t max_output_len = 0; // > 0: outputs are capped
};
std::unique_ptr<Workload> makeTraceWorkload(std::vector<TraceRecord> records,
                                            const TraceWorkloadOptions& options);
// The prompt segments of one Mooncake record: one 512-token segment per hash id (the last one
// cut to input_length), plus a request-unique tail if input_length exceeds the blocks.
std::vector<PromptSegment> mooncakeSegments(const TraceRecord& record, uint64_t request_id);

struct MultiTurnOptions {
  int32_t users = 8;
  int32_t turns = 4;
  LengthDist input{LengthDist::Kind::kFixed, 128, 0};   // tokens per user message
  LengthDist output{LengthDist::Kind::kFixed, 128, 0};  // tokens per assistant reply
  int32_t system_prompt_tokens = 0;  // one system prompt shared by all users (0: none)
  uint64_t seed = 0;
};
// `renderer` renders earlier user turns into history text; it must outlive the workload.
std::unique_ptr<Workload> makeMultiTurnWorkload(const MultiTurnOptions& options,
                                                const PromptRenderer* renderer);

}  // namespace turbine::bench
