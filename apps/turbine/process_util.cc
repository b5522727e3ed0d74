#include "process_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/llama_model.h"

namespace turbine::app {

Result<size_t> parseBytes(const std::string& text, const std::string& flag) {
  size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    return invalidArgument(flag + ": '" + text + "' is not a size in bytes");
  }
  std::string unit = text.substr(used);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  int shift = 0;
  if (unit.empty() || unit == "b") shift = 0;
  else if (unit == "k" || unit == "kb" || unit == "kib") shift = 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") shift = 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") shift = 30;
  else return invalidArgument(flag + ": unknown unit in '" + text + "' (use KiB, MiB or GiB)");
  if (v == 0 || v > (~0ull >> shift)) return invalidArgument(flag + ": '" + text + "' is out of range");
  return static_cast<size_t>(v << shift);
}

sigset_t blockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

const char* waitForStopSignal(const sigset_t& signals) {
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  return sig == SIGINT ? "SIGINT" : "SIGTERM";
}

const char* waitForStopSignalFor(const sigset_t& signals, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const auto left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return nullptr;
    timespec ts{static_cast<time_t>(left), static_cast<long>((left - std::floor(left)) * 1e9)};
    const int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT) return "SIGINT";
    if (sig == SIGTERM) return "SIGTERM";
    if (sig < 0 && errno == EAGAIN) return nullptr;  // EINTR: wait again
  }
}

Result<int> pickFreePort(const std::string& host) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return invalidArgument("--host: '" + host + "' is not an IPv4 address");
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return unavailable(std::string("socket: ") + std::strerror(errno));
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return unavailable("cannot bind a port on " + host + ": " + why);
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

Result<std::unique_ptr<engine::ModelRunner>> makeCpuRunner(
    const std::shared_ptr<const model::ModelWeights>& weights, const CpuRunnerOptions& options) {
  engine::LlamaModelOptions mo;
  mo.threads = options.threads;
  mo.block_size = options.block_size;
  mo.kv_cache_bytes = options.kv_cache_bytes;
  mo.max_model_len = options.max_model_len;
  TURBINE_ASSIGN_OR_RETURN(mo.kv_dtype, kvCacheDtype(options.kv_cache_dtype, *weights));
  TURBINE_ASSIGN_OR_RETURN(auto runner, engine::LlamaModel::create(weights, mo));
  return std::unique_ptr<engine::ModelRunner>(std::move(runner));
}

Result<engine::KvDType> kvCacheDtype(const std::string& name, const model::ModelWeights& weights) {
  if (name == "auto") return engine::autoKvDType(weights);
  if (auto t = engine::kvDTypeFromName(name)) return *t;
  return invalidArgument("--kv-cache-dtype: expected auto, f32, f16 or bf16, got '" + name + "'");
}

void addKvTierOptions(CLI::App* cmd, KvTierFlags& flags) {
  cmd->add_option("--kv-host-cache", flags.host,
                  "Host memory per worker for KV blocks evicted from its pool, brought back instead of "
                  "recomputed, e.g. 4GiB (default: none)");
  cmd->add_option("--kv-disk-cache", flags.disk,
                  "Disk space per worker for KV blocks evicted from the host cache (or from the pool "
                  "without one), e.g. 16GiB (default: none)");
  cmd->add_option("--kv-disk-cache-dir", flags.disk_dir,
                  "Folder for the disk cache's file, removed when the worker ends (default: the "
                  "temporary folder)");
}

Result<engine::KvTierOptions> kvTierOptions(const KvTierFlags& flags) {
  engine::KvTierOptions t;
  if (!flags.host.empty()) {
    TURBINE_ASSIGN_OR_RETURN(t.host_bytes, parseBytes(flags.host, "--kv-host-cache"));
  }
  if (!flags.disk.empty()) {
    TURBINE_ASSIGN_OR_RETURN(t.disk_bytes, parseBytes(flags.disk, "--kv-disk-cache"));
  }
  if (!flags.disk_dir.empty() && flags.disk.empty())
    return invalidArgument("--kv-disk-cache-dir needs --kv-disk-cache");
  if (t.disk_bytes > 0) {
    std::error_code ec;
    t.disk_dir = flags.disk_dir.empty() ? std::filesystem::temp_directory_path(ec).string() : flags.disk_dir;
    if (!std::filesystem::is_directory(t.disk_dir, ec))
      return invalidArgument("--kv-disk-cache-dir: '" + t.disk_dir + "' is not a folder");
  }
  return t;
}

std::string describeKvTiers(const engine::KvTierOptions& t) {
  const auto mib = [](size_t b) { return std::to_string(b >> 20) + " MiB"; };
  std::string out;
  if (t.host_bytes > 0) out = "host cache " + mib(t.host_bytes);
  if (t.disk_bytes > 0) out += (out.empty() ? "" : ", ") + std::string("disk cache ") + mib(t.disk_bytes) + " in " + t.disk_dir;
  return out;
}

void addOutputParserOptions(CLI::App* cmd, OutputParserFlags& flags) {
  auto* enable = cmd->add_flag("--enable-auto-tool-choice", flags.enable_auto,
                               "Chat requests with tools (tool_choice 'auto') get the model's tool calls back "
                               "as tool_calls");
  auto* parser = cmd->add_option("--tool-call-parser", flags.parser,
                                 "How the model writes tool calls: " + std::string(frontend::kToolCallFormatNames))
                     ->check(CLI::IsMember({"hermes", "llama3_json", "mistral", "pythonic"}));
  enable->needs(parser);
  parser->needs(enable);
  cmd->add_option("--reasoning-parser", flags.reasoning_parser,
                  "Split the model's reasoning into reasoning_content: " + std::string(frontend::kReasoningFormatNames))
      ->check(CLI::IsMember({"deepseek_r1", "qwen3"}));
}

std::optional<frontend::ReasoningFormat> reasoningFormat(const OutputParserFlags& flags) {
  if (flags.reasoning_parser.empty()) return std::nullopt;
  auto format = frontend::reasoningFormatByName(flags.reasoning_parser);
  return format ? std::optional<frontend::ReasoningFormat>(*format) : std::nullopt;
}

Result<std::optional<frontend::ToolCallFormat>> toolCallFormat(const OutputParserFlags& flags) {
  if (!flags.enable_auto || flags.parser.empty()) return std::optional<frontend::ToolCallFormat>();
  auto format = frontend::toolCallFormatByName(flags.parser);
  if (!format) return format.status().withPrefix("--tool-call-parser");
  return std::optional<frontend::ToolCallFormat>(*format);
}

void addRouterOptions(CLI::App* cmd, router::RouterOptions& o) {
  cmd->add_option("--seed", o.seed, "Router randomness (ties, softmax)")->capture_default_str();
  cmd->add_option("--overlap-weight", o.overlap_weight, "kv router: weight of uncached prompt blocks")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--router-temperature", o.temperature, "kv router: softmax temperature (0: the minimum)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_flag_callback("--no-kv-events", [&o] { o.use_kv_events = false; },
                         "Approximate mode: the kv router learns from its own decisions, not from events");
  cmd->add_option("--busy-kv-fraction", o.busy_kv_fraction,
                  "kv router: skip workers whose active KV blocks exceed this fraction (0: off)")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--busy-prefill-tokens", o.busy_prefill_tokens,
                  "kv router: skip workers with more queued prefill tokens than this (0: off)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--queued-prefill-weight", o.queued_prefill_weight,
                  "kv router: weight of a worker's queued prefill blocks in the cost (0: DESIGN.md §4's formula)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--router-index-blocks", o.index_blocks,
                  "kv router: size the prefix index for this many distinct blocks at start, 16-32 bytes "
                  "each (0: grow as needed, doubling the table a page at a time)")
      ->capture_default_str();
}

void logLine(const char* command, const std::string& line) {
  std::fprintf(stderr, "turbine %s: %s\n", command, line.c_str());
  std::fflush(stderr);
}

}  // namespace turbine::app
