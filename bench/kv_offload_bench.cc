// KV offloading benchmark (kv/block_manager.h, EngineOptions::kv_tiers), in two parts:
//   1. tiers: raw KvBlockManager throughput, GB/s of block bytes moved (one direction), median of
//      --rounds rounds over --host-mib MiB of blocks (far more than the L3), for the medium
//      preset's bf16 KV block and a 64 KiB block: offload into / onboard out of the host tier,
//      the same with a disk-only tier (pwrite / pread in a file under --disk-dir: through the page
//      cache, so this is the syscall + page-cache copy cost, not the device's), and host -> disk
//      demotion (host tier full: every offload also writes one block to disk). The limit is a
//      plain memcpy of the same blocks between the same buffers, measured in the same round; each
//      figure is printed with its ratio to it (1.0x: the manager costs nothing over the copy).
//      Round 0 (pages first touched) is left out of the medians and printed as "first fill".
//   2. engine: time to first token of a --prompt-token prompt A (max_tokens 1, greedy) on the
//      --preset model, after other prompts evicted A's blocks from a small device pool: with no
//      tiers (A recomputed), a host tier and a disk-only tier (A's prefix onboarded). Also A cold
//      and A straight after itself (device prefix-cache hit, the floor). The after-eviction TTFT
//      is the median of --engine-rounds rounds (four fresh prompts, then A). Checks and prints
//      the engine's offloaded / onboarded counters and the cached_tokens of A's usage. With tiers,
//      A's TTFT also pays for offloading the blocks evicted to admit it (on the step loop).
// Run: build/bench/kv_offload_bench [--host-mib 256] [--rounds 5] [--preset small]
//      [--dtype bf16] [--prompt 1024] [--threads 2] [--engine-rounds 3] [--disk-dir /tmp]
//      [--models DIR]
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "bench_models.h"
#include "common/anonymous_memory.h"
#include "engine/cpu/kernels.h"
#include "engine/engine.h"
#include "engine/llama_model.h"
#include "kv/block_manager.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  size_t host_mib = 256;
  int rounds = 5;
  std::string preset = "small";
  std::string dtype = "bf16";
  int prompt = 1024;
  int threads = 2;
  int engine_rounds = 3;
  std::string disk_dir = "/tmp";
  std::string models;
};

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ---- Part 1: the tiers alone ----

struct TierFigures {
  std::vector<double> memcpy_, host_off, host_on, disk_off, disk_on, demote;
};

Status benchTiers(const Args& a, size_t block, const std::string& what, const std::string& dir) {
  const int64_t n = static_cast<int64_t>((a.host_mib << 20) / block);
  const size_t total = static_cast<size_t>(n) * block;
  TURBINE_ASSIGN_OR_RETURN(AnonymousMemory src, AnonymousMemory::allocate(total, "source"));
  TURBINE_ASSIGN_OR_RETURN(AnonymousMemory dst, AnonymousMemory::allocate(total, "destination"));
  std::memset(src.data(), 0x5a, total);  // fault both in before timing
  std::memset(dst.data(), 0, total);
  auto mk = [&](int64_t host, int64_t disk) {
    return kv::KvBlockManager::create({block, host, disk, dir});
  };
  TURBINE_ASSIGN_OR_RETURN(auto host, mk(n, 0));
  TURBINE_ASSIGN_OR_RETURN(auto disk, mk(0, n));
  TURBINE_ASSIGN_OR_RETURN(auto both, mk(n, n));
  auto blockAt = [&](AnonymousMemory& m, int64_t i) { return m.data() + i * block; };
  // Offloads blocks [first, first + n) of hashes first + 1.. (chained) from `src`.
  auto offload = [&](kv::KvBlockManager& m, int64_t first) -> Status {
    for (int64_t i = 0; i < n; ++i) {
      const auto parent = i > 0 ? std::optional<kv::BlockHash>(first + i) : std::nullopt;
      TURBINE_RETURN_IF_ERROR(m.offload(first + i + 1, parent, [&](void* d) {
        std::memcpy(d, blockAt(src, i), block);
        return Status::ok();
      }));
    }
    (void)m.takeEvents();  // the engine drains them after every offload, too
    return Status::ok();
  };
  auto onboard = [&](kv::KvBlockManager& m) -> Status {
    for (int64_t i = 0; i < n; ++i) {
      TURBINE_RETURN_IF_ERROR(m.onboard(i + 1, [&](const void* s) {
        std::memcpy(blockAt(dst, i), s, block);
        return Status::ok();
      }));
    }
    return Status::ok();
  };
  TierFigures f;  // GB/s per round
  auto timed = [&](std::vector<double>& out, auto&& fn) -> Status {
    const auto t0 = Clock::now();
    TURBINE_RETURN_IF_ERROR(fn());
    out.push_back(static_cast<double>(total) / secondsSince(t0) / 1e9);
    return Status::ok();
  };
  // Round 0 is a warm-up: the host tier's pages and the disk file's page-cache pages are faulted
  // in by its offloads (the first fill of a fresh tier, printed apart: the engine pays it on its
  // step loop while the tiers fill).
  TierFigures cold;  // round 0
  for (int r = 0; r <= a.rounds; ++r) {
    if (r == 1) cold = std::exchange(f, {});
    TURBINE_RETURN_IF_ERROR(timed(f.memcpy_, [&] {
      for (int64_t i = 0; i < n; ++i) std::memcpy(blockAt(dst, i), blockAt(src, i), block);
      return Status::ok();
    }));
    host->clear();
    TURBINE_RETURN_IF_ERROR(timed(f.host_off, [&] { return offload(*host, 0); }));
    TURBINE_RETURN_IF_ERROR(timed(f.host_on, [&] { return onboard(*host); }));
    disk->clear();
    TURBINE_RETURN_IF_ERROR(timed(f.disk_off, [&] { return offload(*disk, 0); }));
    TURBINE_RETURN_IF_ERROR(timed(f.disk_on, [&] { return onboard(*disk); }));
    both->clear();
    TURBINE_RETURN_IF_ERROR(offload(*both, 0));  // host tier full
    TURBINE_RETURN_IF_ERROR(timed(f.demote, [&] { return offload(*both, n); }));
  }
  const kv::KvBlockManagerStats s = both->stats();
  if (s.demoted < n || s.io_errors > 0 || disk->stats().io_errors > 0) {
    return internalError("expected every demotion offload to write to disk, no I/O errors");
  }
  const double base = median(f.memcpy_);
  std::printf("tiers: block %zu B (%s), %lld blocks = %zu MiB, median of %d rounds\n", block,
              what.c_str(), static_cast<long long>(n), total >> 20, a.rounds);
  auto line = [&](const char* name, const std::vector<double>& v) {
    const double g = median(v);
    std::printf("  %-36s %7.2f GB/s  %5.2fx memcpy\n", name, g, g / base);
  };
  line("memcpy (the limit)", f.memcpy_);
  line("host offload  (device -> host)", f.host_off);
  line("host onboard  (host -> device)", f.host_on);
  line("disk offload  (-> disk, page cache)", f.disk_off);
  line("disk onboard  (disk -> device)", f.disk_on);
  line("host offload + demote host -> disk", f.demote);
  line("first fill: host offload", cold.host_off);
  line("first fill: disk offload", cold.disk_off);
  std::fflush(stdout);
  return Status::ok();
}

// ---- Part 2: the engine ----

using bench_util::FirstToken;
using bench_util::firstToken;
using bench_util::randomPrompt;

struct EngineFigures {
  std::string tiers;
  FirstToken cold, hit, again;
  std::vector<double> again_rounds;  // seconds
  int64_t offloaded = 0, onboarded = 0;  // over all rounds
  size_t block_bytes = 0;                 // the runner's KV block, all layers
};

Result<EngineFigures> benchEngine(std::shared_ptr<const model::ModelWeights> w, const Args& a,
                                  const std::string& tiers_name, KvTierOptions tiers) {
  const int32_t vocab = w->config.vocab_size;
  LlamaModelOptions mo;
  mo.threads = a.threads;
  mo.max_model_len = a.prompt + 16;
  const int32_t per_seq = (a.prompt + 1 + mo.block_size - 1) / mo.block_size;
  mo.num_blocks = 3 * per_seq + 3;  // three prompts' worth: A is gone after four others
  TURBINE_ASSIGN_OR_RETURN(auto runner, LlamaModel::create(std::move(w), mo));
  const size_t block_bytes = runner->blockBytes();
  EngineOptions eo;
  eo.model_id = "bench";
  eo.kv_tiers = std::move(tiers);
  TURBINE_ASSIGN_OR_RETURN(auto eng, Engine::create(std::move(runner), eo));
  TURBINE_RETURN_IF_ERROR(firstToken(*eng, "warm", randomPrompt(a.prompt, vocab, 99)).status());
  const std::vector<int32_t> prompt_a = randomPrompt(a.prompt, vocab, 1);
  EngineFigures f;
  f.tiers = tiers_name;
  f.block_bytes = block_bytes;
  TURBINE_ASSIGN_OR_RETURN(f.cold, firstToken(*eng, "a-cold", prompt_a));
  TURBINE_ASSIGN_OR_RETURN(f.hit, firstToken(*eng, "a-hit", prompt_a));
  eng->sync();
  EngineStats before = eng->stats();
  for (int r = 0; r < a.engine_rounds; ++r) {  // evict A with four other prompts, then A again
    for (uint32_t k = 0; k < 4; ++k) {
      const std::string id = "other" + std::to_string(r) + "_" + std::to_string(k);
      const uint32_t salt = 100 + 4 * static_cast<uint32_t>(r) + k;
      TURBINE_RETURN_IF_ERROR(firstToken(*eng, id, randomPrompt(a.prompt, vocab, salt)).status());
    }
    eng->sync();
    const EngineStats evicted = eng->stats();
    TURBINE_ASSIGN_OR_RETURN(f.again, firstToken(*eng, "a-again" + std::to_string(r), prompt_a));
    f.again_rounds.push_back(f.again.seconds);
    eng->sync();
    const EngineStats after = eng->stats();
    const int64_t offloaded = evicted.kv_blocks_offloaded - before.kv_blocks_offloaded;
    const int64_t onboarded = after.kv_blocks_onboarded - evicted.kv_blocks_onboarded;
    f.offloaded += offloaded;
    f.onboarded += onboarded;
    before = after;
    // With tiers, A's blocks must have come back from them; without, A must have left the pool.
    if (tiers_name != "none" ? offloaded == 0 || onboarded == 0 : f.again.cached_tokens > 0) {
      std::printf("  WARNING: tiers %s, round %d: %lld offloaded, %lld onboarded, A cached %d\n",
                  tiers_name.c_str(), r, static_cast<long long>(offloaded),
                  static_cast<long long>(onboarded), f.again.cached_tokens);
    }
  }
  f.again.seconds = median(f.again_rounds);
  return f;
}

Status benchEngines(const Args& a, const std::string& dir) {
  TURBINE_ASSIGN_OR_RETURN(std::string path,
                           bench_util::ensureModel(a.models, a.preset, a.dtype));
  TURBINE_ASSIGN_OR_RETURN(model::ModelWeights w, model::loadModel(path));
  auto weights = std::make_shared<const model::ModelWeights>(std::move(w));
  const size_t tier_bytes = a.host_mib << 20;
  std::vector<EngineFigures> all;
  for (const auto& [name, tiers] : {std::pair<std::string, KvTierOptions>{"none", {}},
                                    {"host", {tier_bytes, 0, ""}},
                                    {"disk", {0, tier_bytes, dir}}}) {
    TURBINE_ASSIGN_OR_RETURN(EngineFigures f, benchEngine(weights, a, name, tiers));
    all.push_back(std::move(f));
  }
  std::printf(
      "engine: %s-%s (KV block %zu B), %d threads, prompt A %d tokens, max_tokens 1, device pool "
      "of 3 prompts; after eviction: median of %d rounds\n",
      a.preset.c_str(), a.dtype.c_str(), all.front().block_bytes, a.threads, a.prompt,
      a.engine_rounds);
  const double recompute = all.front().again.seconds;
  for (const EngineFigures& f : all) {
    std::printf(
        "  tiers %-4s  A cold %7.1f ms | A pool hit %6.1f ms (cached %4d) | A after eviction "
        "%7.1f ms (cached %4d, %7.0f prompt tok/s, %5.1fx vs recompute) | offloaded %lld, "
        "onboarded %lld blocks in all\n",
        f.tiers.c_str(), f.cold.seconds * 1e3, f.hit.seconds * 1e3, f.hit.cached_tokens,
        f.again.seconds * 1e3, f.again.cached_tokens, a.prompt / f.again.seconds,
        recompute / f.again.seconds, static_cast<long long>(f.offloaded),
        static_cast<long long>(f.onboarded));
    std::printf("              after-eviction rounds:");
    for (double t : f.again_rounds) std::printf(" %.1f", t * 1e3);
    std::printf(" ms\n");
  }
  std::printf("  TTFT after eviction: recompute %.1f ms, host %.1f ms, disk %.1f ms\n",
              recompute * 1e3, all[1].again.seconds * 1e3, all[2].again.seconds * 1e3);
  for (size_t i = 1; i < all.size(); ++i) {
    if (all[i].again.seconds >= recompute) {
      std::printf("  NOTE: onboarding from %s is NOT faster than recomputing A\n",
                  all[i].tiers.c_str());
    }
  }
  std::fflush(stdout);
  return Status::ok();
}

int run(const Args& a) {
  std::string dir = a.disk_dir + "/kv_offload_bench.XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    std::fprintf(stderr, "kv_offload_bench: cannot create a folder in %s\n", a.disk_dir.c_str());
    return 1;
  }
  auto cfg = model::presetConfig(model::findModelPreset("medium").value());
  const size_t medium_block = size_t{2} * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 16 * 2;
  const std::string medium_what = "medium bf16: 2 (K,V) x " + std::to_string(cfg.num_layers) +
                                  " layers x " + std::to_string(cfg.num_kv_heads) +
                                  " KV heads x " + std::to_string(cfg.head_dim) +
                                  " x 16 tokens x 2 B";
  Status st = benchTiers(a, medium_block, medium_what, dir);
  if (st.isOk()) st = benchTiers(a, size_t{64} << 10, "small block, 64 KiB", dir);
  if (st.isOk()) st = benchEngines(a, dir);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!st.isOk()) {
    std::fprintf(stderr, "kv_offload_bench: %s\n", st.toString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace turbine::engine

int main(int argc, char** argv) {
  turbine::engine::cpu::reexecForBlasCore(argv);
  turbine::engine::Args a;
  a.models = turbine::bench_util::defaultModelsDir();
  const bool ok = turbine::bench_util::parseFlags(
      argc, argv,
      {{"--host-mib", [&](const std::string& v) { a.host_mib = std::stoul(v); }},
       {"--rounds", [&](const std::string& v) { a.rounds = std::max(1, std::stoi(v)); }},
       {"--preset", [&](const std::string& v) { a.preset = v; }},
       {"--dtype", [&](const std::string& v) { a.dtype = v; }},
       {"--prompt", [&](const std::string& v) { a.prompt = std::stoi(v); }},
       {"--threads", [&](const std::string& v) { a.threads = std::stoi(v); }},
       {"--engine-rounds", [&](const std::string& v) { a.engine_rounds = std::max(1, std::stoi(v)); }},
       {"--disk-dir", [&](const std::string& v) { a.disk_dir = v; }},
       {"--models", [&](const std::string& v) { a.models = v; }}},
      "kv_offload_bench [--host-mib 256] [--rounds 5] [--preset small] [--dtype bf16] [--prompt 1024] "
      "[--threads 2] [--engine-rounds 3] [--disk-dir /tmp] [--models DIR]");
  return ok ? turbine::engine::run(a) : 2;
}
