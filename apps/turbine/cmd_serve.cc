// turbine serve: the embedded single-process default (DESIGN.md §1): the OpenAI frontend, a
// router and N workers (each its own LlamaModel + Engine over one shared memory-mapped copy of
// the weights), wired through the in-process request, discovery and event planes.
// Without --model it serves a demo model that it generates once into a cache folder.
// SIGINT / SIGTERM: graceful shutdown (stop accepting, finish in-flight requests up to the
// grace period, then stop the engines), exit code 0.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "process_util.h"
#include "engine/engine.h"
#include "engine/llama_model.h"
#include "frontend/engine_backend.h"
#include "frontend/openai_server.h"
#include "frontend/serving_assets.h"
#include "model/chat_template.h"
#include "model/make_model.h"
#include "model/model_loader.h"
#include "model/tokenizer.h"
#include "router/router.h"
#include "runtime/in_process_discovery.h"
#include "runtime/in_process_event_plane.h"
#include "runtime/in_process_request_plane.h"
#include "worker/worker.h"

namespace turbine::app {
namespace {

namespace fs = std::filesystem;

struct ServeArgs {
  std::string model;
  int workers = 1;
  int threads = 0;
  std::string kv_cache_memory;
  KvTierFlags kv_tier_flags;
  engine::KvTierOptions kv_tiers;  // parsed from kv_tier_flags
  std::string kv_cache_dtype = "auto";
  int32_t max_model_len = 0;
  int32_t block_size = 16;
  std::string served_model_name;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  OutputParserFlags output_parsers;
  std::string router;
  int max_num_seqs = 256;
  int shutdown_grace_s = 10;
  int io_threads = 2;
  router::RouterOptions routing;  // the policy comes from `router`
};

void logLine(const std::string& line) { app::logLine("serve", line); }

// $XDG_CACHE_HOME/turbine/models/small-demo, else ~/.cache/turbine/models/small-demo.
Result<fs::path> demoModelDir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    return fs::path(xdg) / "turbine" / "models" / "small-demo";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return fs::path(home) / ".cache" / "turbine" / "models" / "small-demo";
  }
  return failedPrecondition("neither XDG_CACHE_HOME nor HOME is set: give --model PATH");
}

// Generates the demo model once: written into a temporary sibling folder and renamed into place,
// so an interrupted run never leaves a half-written model at `dir`.
Status ensureDemoModel(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "config.json", ec) && fs::exists(dir / "model.safetensors", ec) &&
      fs::exists(dir / "tokenizer.json", ec)) {
    logLine("no --model given: serving the demo model (random weights, make-model --preset small) from " +
            dir.string());
    return Status::ok();
  }
  logLine("no --model given: generating the demo model (make-model --preset small --format hf --dtype f32) "
          "once into " + dir.string() + " ...");
  fs::create_directories(dir.parent_path(), ec);
  if (ec) return ioError(dir.parent_path().string() + ": cannot create: " + ec.message());
  const fs::path tmp = dir.parent_path() / (dir.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  model::MakeModelOptions mo;
  mo.preset = "small";
  mo.format = "hf";
  mo.dtype = "f32";
  mo.seed = 0;
  mo.out = tmp.string();
  Status st = model::makeModel(mo);
  if (!st.isOk()) {
    fs::remove_all(tmp, ec);
    return st;
  }
  fs::remove_all(dir, ec);  // a stale, incomplete folder (the complete check above failed)
  fs::rename(tmp, dir, ec);
  if (ec) {
    fs::remove_all(tmp, ec);
    if (!fs::exists(dir / "config.json", ec)) return ioError(dir.string() + ": cannot rename the demo model into place");
  }
  logLine("demo model ready at " + dir.string());
  return Status::ok();
}

// Everything `turbine serve` runs, in the order it must stop (reverse of construction).
struct Stack {
  runtime::InProcessRequestPlane requests;
  runtime::InProcessDiscovery discovery;
  runtime::InProcessEventPlane events;
  std::vector<std::shared_ptr<worker::Worker>> workers;
  std::shared_ptr<frontend::EngineBackend> backend;
  std::unique_ptr<frontend::OpenAiServer> server;

  ~Stack() {
    if (server) server->shutdown();
    for (auto& w : workers) w->shutdown(engine::Engine::ShutdownMode::kAbort);
    events.close();
    server.reset();
    backend.reset();
  }
};

Status startWorkers(const ServeArgs& args, const model::ModelInfo& info,
                    const std::shared_ptr<const model::ModelWeights>& weights, const model::Tokenizer& tokenizer,
                    size_t kv_bytes, Stack& stack) {
  std::shared_ptr<const structured::TokenTrie> token_trie;  // shared by the workers' engines
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int total_threads = args.threads > 0 ? args.threads : cores;
  const int per_worker = std::max(1, total_threads / args.workers);
  for (int i = 0; i < args.workers; ++i) {
    CpuRunnerOptions ro;
    ro.threads = per_worker;
    ro.block_size = args.block_size;
    ro.kv_cache_bytes = kv_bytes;
    ro.max_model_len = args.max_model_len;
    ro.kv_cache_dtype = args.kv_cache_dtype;
    TURBINE_ASSIGN_OR_RETURN(auto runner, makeCpuRunner(weights, ro));
    TURBINE_ASSIGN_OR_RETURN(const engine::KvDType kv_dtype,
                             kvCacheDtype(ro.kv_cache_dtype, *weights));
    engine::EngineOptions eo;
    eo.eos_token_ids = info.eos_token_ids;
    eo.max_num_seqs = args.max_num_seqs;
    eo.kv_tiers = args.kv_tiers;
    if (!token_trie) token_trie = engine::tokenTrieFor(tokenizer, runner->vocabSize());
    eo.token_trie = token_trie;
    worker::WorkerOptions wo;
    wo.worker_id = static_cast<kv::WorkerId>(i);
    wo.model_id = info.model_id;
    TURBINE_ASSIGN_OR_RETURN(auto w, worker::Worker::start(std::move(runner), eo, wo,
                                                           {&stack.requests, &stack.discovery, &stack.events}));
    const auto& rec = w->record();
    logLine("worker " + std::to_string(i) + ": " + std::to_string(per_worker) + " threads, " +
            std::to_string(rec.kv_blocks_total) + " KV blocks of " + std::to_string(rec.block_size) +
            " tokens (" + engine::kvDTypeName(kv_dtype) + "), max_model_len " + std::to_string(rec.max_model_len) +
            (args.kv_tiers.host_bytes + args.kv_tiers.disk_bytes > 0 ? "; " + describeKvTiers(args.kv_tiers) : ""));
    stack.workers.push_back(std::move(w));
  }
  return Status::ok();
}

// What every worker and the frontend share: one memory-mapped copy of the weights, the
// tokenizer and the chat template.
struct ModelAssets : frontend::ServingAssets {
  std::shared_ptr<const model::ModelWeights> weights;
};

Result<ModelAssets> loadAssets(const std::string& path) {
  ModelAssets a;
  TURBINE_ASSIGN_OR_RETURN(static_cast<frontend::ServingAssets&>(a), frontend::loadServingAssets(path));
  TURBINE_ASSIGN_OR_RETURN(model::ModelWeights w, model::loadModel(path));
  a.weights = std::make_shared<const model::ModelWeights>(std::move(w));
  if (!a.chat_template) logLine("the model has no chat template: /v1/chat/completions answers 400");
  return a;
}

Status startFrontend(const ServeArgs& args, const ModelAssets& assets, std::shared_ptr<router::Router> router,
                     Stack& stack) {
  frontend::EngineBackendOptions bo;
  bo.served_model_name = args.served_model_name.empty() ? assets.info.model_id : args.served_model_name;
  bo.model_id = assets.info.model_id;
  bo.vocab_size = assets.weights->config.vocab_size;
  bo.bos_token = assets.info.bos_token;
  bo.eos_token = assets.info.eos_token;
  bo.created = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
  TURBINE_ASSIGN_OR_RETURN(stack.backend, frontend::EngineBackend::create(
                                              bo, assets.tokenizer, assets.chat_template, std::move(router),
                                              {&stack.requests, &stack.discovery, &stack.events}));
  frontend::OpenAiServerOptions so;
  so.http.host = args.host;
  so.http.port = static_cast<uint16_t>(args.port);
  so.api_key = args.api_key;
  TURBINE_ASSIGN_OR_RETURN(so.tool_call_format, toolCallFormat(args.output_parsers));
  so.reasoning_format = reasoningFormat(args.output_parsers);
  so.shutdown_grace = std::chrono::seconds(args.shutdown_grace_s);
  so.http.io_threads = args.io_threads;
  stack.server = std::make_unique<frontend::OpenAiServer>(so, stack.backend);
  TURBINE_RETURN_IF_ERROR(stack.server->start());
  logLine("serving model '" + bo.served_model_name + "' (" + assets.info.path + ") with " +
          std::to_string(args.workers) + " worker(s), router " + args.router);
  return Status::ok();
}

Status runServe(ServeArgs args) {
  if (args.model.empty()) {
    TURBINE_ASSIGN_OR_RETURN(fs::path dir, demoModelDir());
    TURBINE_RETURN_IF_ERROR(ensureDemoModel(dir));
    args.model = dir.string();
  }
  size_t kv_bytes = 0;
  if (!args.kv_cache_memory.empty()) {
    TURBINE_ASSIGN_OR_RETURN(kv_bytes, parseBytes(args.kv_cache_memory, "--kv-cache-memory"));
  }
  TURBINE_ASSIGN_OR_RETURN(args.kv_tiers, kvTierOptions(args.kv_tier_flags));
  if (args.router.empty()) args.router = router::hasKvRouter() ? "kv" : "least-loaded";
  router::RouterOptions ro = args.routing;
  ro.policy = args.router;
  TURBINE_ASSIGN_OR_RETURN(std::unique_ptr<router::Router> router, router::makeRouter(ro));
  TURBINE_ASSIGN_OR_RETURN(ModelAssets assets, loadAssets(args.model));

  // From here on threads exist: SIGINT / SIGTERM are taken by sigwait() below, in this thread only.
  const sigset_t signals = blockStopSignals();

  Stack stack;
  TURBINE_RETURN_IF_ERROR(startWorkers(args, assets.info, assets.weights, *assets.tokenizer, kv_bytes, stack));
  TURBINE_RETURN_IF_ERROR(startFrontend(args, assets, std::move(router), stack));
  logLine("listening on http://" + args.host + ":" + std::to_string(stack.server->port()));

  logLine(std::string("received ") + waitForStopSignal(signals) + ", shutting down");
  stack.server->shutdown();  // in-flight requests get the grace period
  for (auto& w : stack.workers) w->shutdown(engine::Engine::ShutdownMode::kAbort);
  logLine("stopped");
  return Status::ok();
}

}  // namespace

void addServeCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Serve a model with the OpenAI API (frontend + router + workers)");
  auto args = std::make_shared<ServeArgs>();
  cmd->add_option("--model", args->model,
                  "HF model folder or .gguf file (default: a demo model generated once into the cache)");
  cmd->add_option("--workers", args->workers, "In-process workers (engines)")
      ->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--threads", args->threads, "Kernel threads in all, split among the workers (default: all cores)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--kv-cache-memory", args->kv_cache_memory,
                  "KV cache bytes per worker, e.g. 536870912 or 512MiB (default: 4 sequences of max-model-len)");
  addKvTierOptions(cmd, args->kv_tier_flags);
  cmd->add_option("--kv-cache-dtype", args->kv_cache_dtype,
                  "KV cache element type (auto: the weights' type, f16 for q8_0, f32 for f32)")
      ->check(CLI::IsMember(kKvCacheDtypes))->capture_default_str();
  cmd->add_option("--max-model-len", args->max_model_len, "Longest sequence (default: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--block-size", args->block_size, "Tokens per KV block")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--served-model-name", args->served_model_name, "Model name in the API (default: the model id)");
  cmd->add_option("--host", args->host, "Address to bind")->capture_default_str();
  cmd->add_option("--port", args->port, "Port to bind (0: pick a free one; the log says which)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--api-key", args->api_key, "Require 'Authorization: Bearer KEY'");
  addOutputParserOptions(cmd, args->output_parsers);
  cmd->add_option("--router", args->router, "kv | least-loaded | round-robin | random (default: kv if built)")
      ->check(CLI::IsMember({"kv", "least-loaded", "round-robin", "random"}));
  cmd->add_option("--max-num-seqs", args->max_num_seqs, "Running sequences per worker at most")
      ->check(CLI::Range(1, 65536))->capture_default_str();
  addRouterOptions(cmd, args->routing);
  cmd->add_option("--io-threads", args->io_threads, "HTTP I/O threads (each its own event loop)")
      ->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--shutdown-grace", args->shutdown_grace_s, "Seconds in-flight requests get on shutdown")
      ->check(CLI::Range(0, 3600))->capture_default_str();
  cmd->callback([args, &exit_code] {
    if (!args->kv_cache_memory.empty()) {
      if (auto bytes = parseBytes(args->kv_cache_memory, "--kv-cache-memory"); !bytes.isOk()) {
        std::fprintf(stderr, "turbine serve: error: %s (see --help)\n", bytes.status().message().c_str());
        exit_code = 2;
        return;
      }
    }
    if (auto tiers = kvTierOptions(args->kv_tier_flags); !tiers.isOk()) {
      std::fprintf(stderr, "turbine serve: error: %s (see --help)\n", tiers.status().message().c_str());
      exit_code = 2;
      return;
    }
    Status st = runServe(*args);
    exit_code = st.isOk() ? 0 : reportError("serve", st);
  });
}

}  // namespace turbine::app
