// What the long-running commands (serve, worker, frontend) share: byte sizes on the command
// line, the SIGINT / SIGTERM wait, a free loopback port, the CPU engine's runner, log lines.
#pragma once

#include <signal.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"
#include "engine/batch.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "frontend/reasoning.h"
#include "frontend/tool_calls.h"
#include "model/weights.h"
#include "router/router.h"

namespace turbine::app {

// "1073741824", "512MiB", "2GiB", "64KiB" (also K/M/G, KB/MB/GB as powers of 1024). `flag` names
// the option in the error.
Result<size_t> parseBytes(const std::string& text, const std::string& flag);

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts from now on, so that
// waitForStopSignal() alone receives them. Call before starting threads.
sigset_t blockStopSignals();
// Waits for SIGINT or SIGTERM; returns "SIGINT" or "SIGTERM".
const char* waitForStopSignal(const sigset_t& signals);
// The same for at most `seconds`; nullptr when none came.
const char* waitForStopSignalFor(const sigset_t& signals, double seconds);

// A TCP port on `host` that was free a moment ago (bind to port 0, read, close).
Result<int> pickFreePort(const std::string& host);

// The CPU engine's model runner over shared, memory-mapped weights.
struct CpuRunnerOptions {
  int threads = 1;
  int32_t block_size = 16;
  size_t kv_cache_bytes = 0;   // 0: the engine's default
  int32_t max_model_len = 0;   // 0: the model's
  std::string kv_cache_dtype = "auto";  // auto (the weights' type; f32 for f32), f32, f16, bf16
};
// --kv-cache-dtype's choices, for CLI11's IsMember check.
inline const std::vector<std::string> kKvCacheDtypes = {"auto", "f32", "f16", "bf16"};
Result<std::unique_ptr<engine::ModelRunner>> makeCpuRunner(
    const std::shared_ptr<const model::ModelWeights>& weights, const CpuRunnerOptions& options);
// The KV cache element type `--kv-cache-dtype` asks for with these weights ("auto" resolved as
// the engine resolves it). InvalidArgument on a name that is not auto, f32, f16 or bf16.
Result<engine::KvDType> kvCacheDtype(const std::string& name, const model::ModelWeights& weights);

// The router's knobs that `serve` and `frontend` share (--seed, --overlap-weight,
// --router-temperature, --no-kv-events, --busy-kv-fraction, --busy-prefill-tokens,
// --queued-prefill-weight), written into `options` (which must outlive parsing). The policy
// itself (--router) stays with each command: their defaults differ.
void addRouterOptions(CLI::App* cmd, router::RouterOptions& options);

// The chat output parsers `serve` and `frontend` share, named as vLLM names them:
// --enable-auto-tool-choice and --tool-call-parser NAME (both needed for tool_choice "auto"),
// --reasoning-parser NAME.
struct OutputParserFlags {
  bool enable_auto = false;
  std::string parser;
  std::string reasoning_parser;
};
void addOutputParserOptions(CLI::App* cmd, OutputParserFlags& flags);
// Both flags need each other and the parser's name is checked as the command line is parsed
// (usage errors). The format the server reads tool calls in: none without the flags.
Result<std::optional<frontend::ToolCallFormat>> toolCallFormat(const OutputParserFlags& flags);
std::optional<frontend::ReasoningFormat> reasoningFormat(const OutputParserFlags& flags);

// KV tiers below a worker's pool (serve and worker, real engine): --kv-host-cache SIZE,
// --kv-disk-cache SIZE, --kv-disk-cache-dir DIR (default: the system's temporary folder).
struct KvTierFlags {
  std::string host;
  std::string disk;
  std::string disk_dir;
};
void addKvTierOptions(CLI::App* cmd, KvTierFlags& flags);
// The sizes parsed (InvalidArgument naming the flag); {} when neither is given.
Result<engine::KvTierOptions> kvTierOptions(const KvTierFlags& flags);
// "host cache 4 GiB, disk cache 16 GiB in /tmp" for a worker's start-up line ("" without tiers).
std::string describeKvTiers(const engine::KvTierOptions& tiers);

// "turbine <command>: <line>" on stderr, flushed.
void logLine(const char* command, const std::string& line);

}  // namespace turbine::app
