// Worker: hosts one Engine (over any engine::ModelRunner: the CPU LlamaModel, a simulator, a
// test double) behind the request plane, and tells the rest of the system about it:
//   - discovery: its WorkerRecord (DESIGN.md §3.5) from start() until shutdown();
//   - request plane: serves generate / abort / health at record().endpoint (DESIGN.md §3.4),
//     translating runtime requests and chunks to and from the engine's;
//   - event plane: every KV event message of the engine on topic "kv" (DESIGN.md §3.2), and its
//     load metrics on topic "load" (DESIGN.md §3.3) every load_interval, and min_load_interval
//     after a change (a request admitted or finished; the pause lets the engine's step that made
//     the change refresh its stats, and caps the rate).
//
// Disaggregated serving (DESIGN.md §4 step 3; docs/fleet.md): a worker with role "prefill" also
// runs a transfer server (src/transfer) from which other workers fetch its KV blocks by hash (its
// record's `transfer` names it). A request with disaggregation.prefill_only is run for one token
// and its final chunk names that address (kv_address). A request with disaggregation.kv_address
// (a decode leg; role "decode") is admitted at once, its prompt's blocks past overlap_blocks are fetched from
// that address on one of the worker's transfer threads, and the request then goes to the engine
// with them (Request::kv_import), so it computes only what the fetch did not bring: a failed or
// partial fetch costs compute, never the request.
//
// Threads: the engine's step loop (chunks and KV events are forwarded from it) and the load
// publisher's (LoadPublisher). Chunk callbacks of callers run on the step loop: they must be quick.
// Lifetime: the three planes must outlive the worker, and the request plane holds a reference
// to it while it serves, so call shutdown() to stop it. shutdown() (also run by the destructor)
// deregisters, stops serving, shuts the engine down (every admitted request still receives its
// final chunk) and stops the publisher. Thread safety: every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "runtime/discovery.h"
#include "runtime/event_plane.h"
#include "runtime/request_plane.h"
#include "transfer/tcp_transfer.h"
#include "worker/load_publisher.h"

namespace turbine::worker {

struct WorkerOptions {
  kv::WorkerId worker_id = 0;    // also the engine's worker_id in its KV event messages
  std::string endpoint;          // request plane address; "" = "worker-<worker_id>"
  std::string event_endpoint;    // event plane address for the record ("" in-process)
  std::string served_model_name; // for the record: the API name of the model ("" = model_id)
  std::string model_path;        // for the record: where frontends read tokenizer and template
  std::string role = "agg";       // "agg" | "prefill" | "decode"
  std::string model_id;          // block-hash root; also the engine's model_id
  // Role "prefill": where its transfer server listens (port 0: a free one).
  std::string transfer_host = "127.0.0.1";
  int transfer_port = 0;
  // A decode leg's fetch, all of it (a slower peer costs the fetch, then compute).
  std::chrono::milliseconds transfer_timeout{10000};
  int transfer_threads = 2;      // concurrent fetches of decode legs
  std::chrono::milliseconds load_interval{100};
  std::chrono::milliseconds min_load_interval{2};
};

struct WorkerPlanes {
  runtime::RequestPlane* requests = nullptr;
  runtime::Discovery* discovery = nullptr;
  runtime::EventPlane* events = nullptr;
};

class Worker : public runtime::WorkerClient {
 public:
  // Creates the engine over `runner` (engine_options.worker_id and model_id are overwritten by
  // the worker's), subscribes to its KV events, serves it and registers it. InvalidArgument when
  // a plane is missing or the engine refuses the options; AlreadyExists when the endpoint is
  // served already.
  static Result<std::shared_ptr<Worker>> start(std::unique_ptr<engine::ModelRunner> runner,
                                               engine::EngineOptions engine_options,
                                               WorkerOptions options, WorkerPlanes planes);
  ~Worker() override;

  Status generate(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk) override;
  void abort(const std::string& request_id) override;
  Status health() override;

  // kDrain finishes every admitted request first; kAbort ends them with finish "abort".
  void shutdown(engine::Engine::ShutdownMode mode = engine::Engine::ShutdownMode::kAbort);

  const runtime::WorkerRecord& record() const { return record_; }
  engine::Engine& engine() { return *engine_; }
  // The metrics that the next load report would carry (also published by the worker).
  kv::LoadMetrics loadMetrics();

  // Decode legs' fetches since start (disaggregated serving).
  struct TransferStats {
    int64_t fetches = 0;         // decode legs whose blocks were fetched
    int64_t fetch_failures = 0;  // fetches that failed (the request computed its prompt)
    int64_t blocks_fetched = 0;
    int64_t bytes_fetched = 0;
    int64_t fetch_us = 0;        // time in fetches, summed
    int64_t blocks_served = 0;   // blocks this worker's transfer server sent (role prefill)
  };
  TransferStats transferStats() const;

 private:
  Worker(WorkerOptions options, WorkerPlanes planes);
  // The prefill leg: one token, then the transfer address in the final chunk.
  Status generatePrefill(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk);
  // The decode leg: admitted now, fetched and handed to the engine on a transfer thread.
  Status generateDecode(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk);
  // Fetches a decode leg's blocks and adds it to the engine (a transfer thread).
  void runDecodeLeg(runtime::GenerateRequest request, uint64_t tag);
  Status addToEngine(engine::Request request, runtime::ChunkCallback on_chunk);
  void transferLoop();
  // The transfer server's source: the engine's blocks (waits for the step loop).
  Result<transfer::BlockBatch> exportBlocks(const std::vector<uint64_t>& ids);

  WorkerOptions options_;
  WorkerPlanes planes_;
  runtime::WorkerRecord record_;
  std::unique_ptr<engine::Engine> engine_;
  std::atomic<bool> serving_{false};
  bool served_ = false;      // set in start(): the endpoint is ours to stop
  bool registered_ = false;  // set in start(): the record is ours to remove

  std::mutex mu_;  // guards shut_down_
  bool shut_down_ = false;
  std::mutex stats_mu_;  // engine_->stats() computes rates between calls: one caller at a time
  LoadPublisher load_;

  std::unique_ptr<transfer::TransferServer> transfer_server_;  // role "prefill"
  mutable std::mutex transfer_mu_;  // guards the fields below
  std::condition_variable transfer_cv_;
  std::deque<std::function<void()>> transfer_jobs_;
  // Decode legs between admission and the engine: their callbacks (abort() takes one out and
  // ends the leg at once; the fetch's result is then dropped), tagged so that a later request
  // with the same id is not mistaken for an aborted one.
  std::map<std::string, std::pair<uint64_t, runtime::ChunkCallback>> fetching_;
  uint64_t next_fetch_tag_ = 0;
  bool transfer_stop_ = false;
  std::vector<std::thread> transfer_threads_;
  TransferStats transfer_stats_;
};

// A transfer::BlockSource's answer from an engine: the leading run of `ids` its pool or tiers hold,
// copied out between two steps (Engine::exportBlocks); DeadlineExceeded when the engine's loop
// does not get to it within `timeout`. What a prefill worker's transfer server serves.
Result<transfer::BlockBatch> exportEngineBlocks(engine::Engine& engine, const std::vector<uint64_t>& ids,
                                                std::chrono::milliseconds timeout);

// Engine <-> request plane translation (exposed for tests).
engine::Request toEngineRequest(runtime::GenerateRequest request);
runtime::GenerateChunk fromEngineOutput(engine::Output&& output);

}  // namespace turbine::worker
