// Disaggregated serving benchmark: what moving a prompt's KV blocks from a prefill engine to a
// decode engine costs in time to first token, against computing the prompt on the decode engine.
// Two engines over the --preset model in this process (the prefill one behind a
// transfer::TransferServer on loopback, as `turbine worker --role prefill` runs it), per round:
//   agg       the decode engine computes a fresh --prompt-token prompt (TTFT, max_tokens 1);
//   prefill   the prefill engine computes another fresh prompt P (its TTFT: the prefill leg);
//   fetch     fetchBlocks of P's full blocks but the last one's over TCP (the decode worker's
//             fetch; includes the prefill engine's copy out between its steps);
//   decode    the decode engine's TTFT for P with the fetched blocks as kv_import (writes them into
//             its pool, computes the tail);
//   hit       P once more on the decode engine: its blocks are pool hits now (the floor of decode).
// Disaggregated TTFT (before the frontend's and gRPC's share) = prefill + fetch + decode; the
// transfer's share is fetch + decode. Medians of --rounds rounds; the fetch's GB/s is printed
// next to a memcpy of the same bytes (the limit of a copy in one host) measured in the same run.
// Run: build/bench/disagg_bench [--preset small] [--dtype bf16] [--prompt 1024] [--threads 2]
//      [--rounds 5] [--models DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_models.h"
#include "engine/cpu/kernels.h"
#include "engine/engine.h"
#include "engine/llama_model.h"
#include "kv/block_hash.h"
#include "model/model_loader.h"
#include "transfer/tcp_transfer.h"
#include "worker/worker.h"

namespace turbine::engine {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string preset = "small";
  std::string dtype = "bf16";
  int prompt = 1024;
  int threads = 2;
  int rounds = 5;
  std::string models;
};

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Result<std::unique_ptr<Engine>> makeEngine(std::shared_ptr<const model::ModelWeights> w, const Args& a) {
  LlamaModelOptions mo;
  mo.threads = a.threads;
  mo.max_model_len = a.prompt + 16;
  const int32_t per_seq = (a.prompt + 1 + mo.block_size - 1) / mo.block_size;
  // Three prompts' worth, all touched by the warm-up: the rounds reuse evicted blocks, as a
  // serving engine does (a fresh 2 MiB page of the pool costs ~3 ms to fault in on this VM).
  mo.num_blocks = 3 * per_seq + 3;
  TURBINE_ASSIGN_OR_RETURN(auto runner, LlamaModel::create(std::move(w), mo));
  EngineOptions eo;
  eo.model_id = "bench";
  return Engine::create(std::move(runner), eo);
}

int run(const Args& a) {
  auto path = bench_util::ensureModel(a.models, a.preset, a.dtype);
  if (!path.isOk()) return std::fprintf(stderr, "%s\n", path.status().message().c_str()), 1;
  auto weights = model::loadModel(*path);
  if (!weights.isOk()) return std::fprintf(stderr, "%s\n", weights.status().message().c_str()), 1;
  auto w = std::make_shared<const model::ModelWeights>(std::move(weights).value());
  const int32_t vocab = w->config.vocab_size;
  auto prefill = makeEngine(w, a);
  auto decode = makeEngine(w, a);
  if (!prefill.isOk() || !decode.isOk()) return std::fprintf(stderr, "engine: cannot start\n"), 1;
  Engine* pe = prefill->get();
  double export_seconds = 0;  // the source's share of the last fetch (the server's thread)
  auto server = transfer::TransferServer::start({}, [pe, &export_seconds](const std::vector<uint64_t>& ids)
                                                        -> Result<transfer::BlockBatch> {
    const auto e0 = Clock::now();
    auto b = worker::exportEngineBlocks(*pe, ids, std::chrono::seconds(10));
    export_seconds = secondsSince(e0);
    return b;
  });
  if (!server.isOk()) return std::fprintf(stderr, "%s\n", server.status().message().c_str()), 1;
  // Warm both engines: thread pools, and every page of their KV pools.
  for (Engine* e : {prefill->get(), decode->get()}) {
    for (uint32_t k = 0; k < 4; ++k) {
      if (!bench_util::firstToken(*e, "warm" + std::to_string(k), bench_util::randomPrompt(a.prompt, vocab, 7 + k))
               .isOk())
        return 1;
    }
  }
  std::vector<double> agg, pre, fetch, exports, dec, hit, gbps, copy_gbps;
  size_t bytes = 0;
  int32_t cached = 0;
  for (int r = 0; r < a.rounds; ++r) {
    const auto salt = static_cast<uint32_t>(1000 + 2 * r);
    auto t = bench_util::firstToken(**decode, "agg" + std::to_string(r), bench_util::randomPrompt(a.prompt, vocab, salt));
    if (!t.isOk() || t->cached_tokens != 0) return std::fprintf(stderr, "agg run failed\n"), 1;
    agg.push_back(t->seconds);

    const std::vector<int32_t> p = bench_util::randomPrompt(a.prompt, vocab, salt + 1);
    t = bench_util::firstToken(**prefill, "p" + std::to_string(r), p);
    if (!t.isOk()) return std::fprintf(stderr, "prefill run failed\n"), 1;
    pre.push_back(t->seconds);

    const int32_t block = (*decode)->blockSize();
    auto chain = kv::blockHashes(kv::rootHash("bench", ""), p, block);
    chain.resize(static_cast<size_t>((a.prompt - 1) / block));
    const auto t0 = Clock::now();
    auto got = transfer::fetchBlocks((*server)->address(), std::vector<uint64_t>(chain.begin(), chain.end()));
    fetch.push_back(secondsSince(t0));
    exports.push_back(export_seconds);
    if (!got.isOk() || got->ids.size() != chain.size()) {
      return std::fprintf(stderr, "fetch failed: %s\n", got.status().toString().c_str()), 1;
    }
    bytes = got->data.size();
    gbps.push_back(static_cast<double>(bytes) / fetch.back() / 1e9);
    std::vector<uint8_t> copy(bytes);
    const auto c0 = Clock::now();
    std::memcpy(copy.data(), got->data.data(), bytes);
    copy_gbps.push_back(static_cast<double>(bytes) / secondsSince(c0) / 1e9);

    auto blocks = std::make_shared<KvBlocks>();
    blocks->block_bytes = got->block_bytes;
    blocks->hashes.assign(got->ids.begin(), got->ids.end());
    blocks->data = std::move(got->data);
    Request req = bench_util::greedyRequest("d" + std::to_string(r), p, 1);
    req.kv_import = std::move(blocks);
    t = bench_util::firstToken(**decode, std::move(req));
    if (!t.isOk()) return std::fprintf(stderr, "decode run failed\n"), 1;
    dec.push_back(t->seconds);
    cached = t->cached_tokens;
    // The floor: P again on the decode engine, every block but the last a prefix hit there now.
    t = bench_util::firstToken(**decode, "hit" + std::to_string(r), p);
    if (!t.isOk() || t->cached_tokens != cached) return std::fprintf(stderr, "hit run failed\n"), 1;
    hit.push_back(t->seconds);
  }
  const double m_agg = median(agg) * 1e3, m_pre = median(pre) * 1e3, m_fetch = median(fetch) * 1e3,
               m_dec = median(dec) * 1e3;
  std::printf("disagg: %s %s, %d-token prompt, %d threads, median of %d rounds\n", a.preset.c_str(), a.dtype.c_str(),
              a.prompt, a.threads, a.rounds);
  std::printf("  aggregated TTFT (decode engine computes the prompt)  %8.1f ms\n", m_agg);
  std::printf("  prefill leg TTFT (prefill engine)                    %8.1f ms\n", m_pre);
  std::printf("  fetch of %zu blocks, %.1f MiB over TCP loopback   %8.2f ms  (%.2f GB/s; memcpy %.2f GB/s)\n",
              static_cast<size_t>((a.prompt - 1) / 16), static_cast<double>(bytes) / (1 << 20), m_fetch,
              median(gbps), median(copy_gbps));
  std::printf("    of which the prefill engine's copy out (exportBlocks)  %8.2f ms\n", median(exports) * 1e3);
  std::printf("  decode TTFT with the blocks imported (cached %d)   %8.2f ms\n", cached, m_dec);
  std::printf("  decode TTFT, the same prompt again (pool hits: floor) %8.2f ms\n", median(hit) * 1e3);
  std::printf("  disaggregated TTFT = prefill + fetch + decode         %8.1f ms  (transfer share %.2f ms)\n",
              m_pre + m_fetch + m_dec, m_fetch + m_dec);
  return cached == (a.prompt - 1) / 16 * 16 ? 0 : (std::fprintf(stderr, "import not used\n"), 1);
}

}  // namespace
}  // namespace turbine::engine

int main(int argc, char** argv) {
  turbine::engine::cpu::reexecForBlasCore(argv);
  turbine::engine::Args a;
  a.models = turbine::bench_util::defaultModelsDir();
  const bool ok = turbine::bench_util::parseFlags(
      argc, argv,
      {{"--preset", [&](const std::string& v) { a.preset = v; }},
       {"--dtype", [&](const std::string& v) { a.dtype = v; }},
       {"--prompt", [&](const std::string& v) { a.prompt = std::stoi(v); }},
       {"--threads", [&](const std::string& v) { a.threads = std::stoi(v); }},
       {"--rounds", [&](const std::string& v) { a.rounds = std::max(1, std::stoi(v)); }},
       {"--models", [&](const std::string& v) { a.models = v; }}},
      "disagg_bench [--preset small] [--dtype bf16] [--prompt 1024] [--threads 2] [--rounds 5] [--models DIR]");
  return ok ? turbine::engine::run(a) : 2;
}
