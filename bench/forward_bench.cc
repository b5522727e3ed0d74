// Whole-model forward benchmark of LlamaModel (one JSON object per line on stdout):
//   - membw: the machine's copy bandwidth (bytes read + written per second, `threads` threads)
//     and read-only bandwidth (see measureBandwidth), measured again right before and right
//     after each decode run (and between its --windows windows of steps), whose line carries
//     the larger figures, which it is divided by, and the per-window fractions' min/median/max;
//   - prefill: tokens/s of one `--prompt`-token prompt computed in one chunk;
//   - decode: tokens/s of greedy-free decode steps at batch 1 (and aggregate at --batches), each
//     sequence at context --context, after the same steps once untimed (warm-up: the KV pool's
//     pages faulted in, as in a running server); weight bytes read per step, the implied GB/s,
//     and decode as a fraction of the bandwidth limit (membw / weight bytes per step).
// Models are generated once (makeModel, seed 1) into --models (default <build>/models) as
// <preset>-<dtype> (HF folder; q8_0 as GGUF file <preset>-q8_0.gguf) and reused.
// Run: build/bench/forward_bench [--preset medium] [--dtypes f32,bf16,f16,q8_0] [--threads 2]
//      [--prompt 512] [--prefill-reps 3] [--context 128] [--steps 32] [--windows 1] [--batches 1,4,16,64]
//      [--models DIR] [--isa avx2 (other kernels than the CPU's best)]
//      [--kv-dtype f32 (KV cache type; default: the model's "auto", bf16 for a bf16 model)]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/cpu/kernels.h"
#include "bench_models.h"
#include "engine/llama_model.h"
#include "model/make_model.h"
#include "model/model_loader.h"

namespace turbine::engine {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string preset = "medium";
  std::vector<std::string> dtypes = {"f32", "bf16", "f16", "q8_0"};
  int threads = 2;
  int prompt = 512;
  int prefill_reps = 3;  // the prefill figure is the best of these
  int context = 128;
  int steps = 32;
  int windows = 1;
  std::vector<int> batches = {1, 4, 16, 64};
  std::string models;
  std::string isa = "auto";       // kernels: auto (the CPU's best), avx512bf16, avx512, avx2, scalar
  std::string kv_dtype = "auto";  // KV cache: auto (the model's choice), f32, f16, bf16
};

bool parseArg(const std::string& k, const std::string& v, Args& a) {
  if (k == "--preset") {
    a.preset = v;
  } else if (k == "--prefill-reps") {
    a.prefill_reps = std::max(1, std::atoi(v.c_str()));
  } else if (k == "--dtypes") {
    a.dtypes = bench_util::splitList(v);
  } else if (k == "--threads") {
    a.threads = std::stoi(v);
  } else if (k == "--prompt") {
    a.prompt = std::stoi(v);
  } else if (k == "--context") {
    a.context = std::stoi(v);
  } else if (k == "--steps") {
    a.steps = std::stoi(v);
  } else if (k == "--windows") {
    a.windows = std::stoi(v);
  } else if (k == "--models") {
    a.models = v;
  } else if (k == "--isa") {
    a.isa = v;
  } else if (k == "--kv-dtype") {
    if (v != "auto" && !kvDTypeFromName(v)) return false;
    a.kv_dtype = v;
  } else if (k == "--batches") {
    a.batches.clear();
    for (const auto& b : bench_util::splitList(v)) a.batches.push_back(std::stoi(b));
  } else {
    return false;
  }
  return true;
}

bool parseArgs(int argc, char** argv, Args& a) {
  try {
    for (int i = 1; i + 1 < argc; i += 2) {
      if (!parseArg(argv[i], argv[i + 1], a)) return false;
    }
  } catch (const std::exception&) {  // std::stoi on a non-number
    return false;
  }
  if (argc % 2 == 0 || a.threads <= 0 || a.prompt <= 0 || a.context <= 0 || a.steps <= 0 ||
      a.windows <= 0) {
    return false;
  }
  if (a.models.empty()) {
    a.models = bench_util::defaultModelsDir();
  }
  return true;
}

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// 512 MiB regions (16x the L3) for the bandwidth measures, 2 MiB aligned, advised for 2 MiB
// pages or not.
struct Region {
  static constexpr size_t kBytes = size_t{512} << 20;
  static constexpr size_t kHuge = size_t{2} << 20;
  void* base = nullptr;
  char* data = nullptr;
  explicit Region(bool huge, char fill) {
    base = ::mmap(nullptr, kBytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
    if (base == MAP_FAILED) std::abort();
    data = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(kHuge - 1));
    (void)::madvise(data, kBytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::memset(data, fill, kBytes);
  }
  ~Region() { ::munmap(base, kBytes + kHuge); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
};

// The machine's bandwidth right now, `threads` threads on contiguous shares, best of `reps`:
//  copy = memcpy of 512 MiB, bytes read + written per second, the better of 4 KiB and 2 MiB
//         pages (the limit the issue asks for; the better one makes it the stricter one);
//  read = a read-only stream over 512 MiB of 2 MiB pages through dotF32 against a 4 KiB vector
//         (the m = 1 matmul's loop), bytes per second.
struct Bandwidth {
  double copy = 0;
  double read = 0;
};

Bandwidth measureBandwidth(cpu::ThreadPool& pool, int reps) {
  static Region small_src(false, 1), small_dst(false, 0), huge_src(true, 1), huge_dst(true, 0);
  const int threads = pool.size();
  const size_t share = Region::kBytes / static_cast<size_t>(threads);
  Bandwidth bw;
  for (int rep = 0; rep < reps; ++rep) {
    for (const auto& [src, dst] : {std::pair{&small_src, &small_dst}, {&huge_src, &huge_dst}}) {
      const auto t0 = Clock::now();
      pool.parallelFor(threads, [&, src = src, dst = dst](int, int64_t b, int64_t) {
        std::memcpy(dst->data + b * share, src->data + b * share, share);
      });
      bw.copy = std::max(bw.copy, 2.0 * Region::kBytes / seconds(t0, Clock::now()));
    }
    const auto* x = reinterpret_cast<const float*>(huge_src.data);
    static const std::vector<float> ones(1024, 1.0f);
    std::vector<float> sums(static_cast<size_t>(threads));
    const int64_t n = static_cast<int64_t>(Region::kBytes / sizeof(float));
    const auto t0 = Clock::now();
    pool.parallelFor(threads, [&](int t, int64_t b, int64_t e) {
      float s = 0;
      for (int64_t i = n / threads * b; i < n / threads * e; i += 1024) {
        s += cpu::dotF32(x + i, ones.data(), 1024);
      }
      sums[static_cast<size_t>(t)] = s;
    });
    bw.read = std::max(bw.read, 1.0 * Region::kBytes / seconds(t0, Clock::now()));
  }
  return bw;
}

Result<std::string> ensureModel(const Args& a, const std::string& dtype) {
  return bench_util::ensureModel(a.models, a.preset, dtype);
}

// Weight bytes one decode step streams: everything but the embedding table (one row of it).
size_t weightBytesPerStep(const model::ModelWeights& w) {
  size_t b = w.totalBytes();
  if (w.lm_head.data != w.tok_embeddings.data) b -= w.tok_embeddings.nbytes;
  return b;
}

std::vector<int32_t> promptTokens(int n, int32_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (i * 7919 + 13) % vocab;
  return t;
}

// Blocks [seq * per_seq, (seq + 1) * per_seq) belong to sequence `seq`.
std::vector<BlockId> tableFor(int seq, int per_seq) {
  std::vector<BlockId> t(static_cast<size_t>(per_seq));
  for (int i = 0; i < per_seq; ++i) t[static_cast<size_t>(i)] = seq * per_seq + i;
  return t;
}

Status benchPrefill(LlamaModel& m, const Args& a, const std::string& name) {
  const std::vector<int32_t> tokens = promptTokens(a.prompt, m.vocabSize());
  const std::vector<BlockId> table = tableFor(0, (a.prompt + m.blockSize() - 1) / m.blockSize());
  std::vector<float> logits(static_cast<size_t>(m.vocabSize()));
  double best = 1e30;
  for (int rep = 0; rep < a.prefill_reps; ++rep) {
    Batch b;
    b.seqs.push_back({tokens, 0, table, true});
    const auto t0 = Clock::now();
    TURBINE_RETURN_IF_ERROR(m.forward(b, logits));
    best = std::min(best, seconds(t0, Clock::now()));
  }
  std::printf(
      "{\"bench\": \"prefill\", \"model\": \"%s\", \"threads\": %d, \"tokens\": %d, "
      "\"seconds\": %.4f, \"tok_per_s\": %.1f}\n",
      name.c_str(), a.threads, a.prompt, best, a.prompt / best);
  std::fflush(stdout);
  return Status::ok();
}

Status benchDecode(LlamaModel& m, const Args& a, const std::string& name, int batch,
                   size_t step_bytes, cpu::ThreadPool& bw_pool) {
  const int per_seq = (a.context + a.steps + m.blockSize() - 1) / m.blockSize();
  std::vector<std::vector<BlockId>> tables;
  const std::vector<int32_t> prompt = promptTokens(a.context, m.vocabSize());
  std::vector<float> logits(static_cast<size_t>(batch) * m.vocabSize());
  for (int s = 0; s < batch; ++s) tables.push_back(tableFor(s, per_seq));
  for (int s = 0; s < batch; s += 8) {  // prefill the contexts, 8 sequences per step
    Batch b;
    for (int j = s; j < std::min(batch, s + 8); ++j) b.seqs.push_back({prompt, 0, tables[j], true});
    TURBINE_RETURN_IF_ERROR(m.forward(b, logits));
  }
  std::vector<int32_t> next(static_cast<size_t>(batch), 1);
  int step = 0;
  auto decodeSteps = [&](int count) -> Status {
    for (int i = 0; i < count; ++i, ++step) {
      Batch b;
      for (int s = 0; s < batch; ++s) {
        b.seqs.push_back({std::span(next).subspan(static_cast<size_t>(s), 1), a.context + step,
                          tables[static_cast<size_t>(s)], true});
      }
      TURBINE_RETURN_IF_ERROR(m.forward(b, logits));
      for (int s = 0; s < batch; ++s)
        next[static_cast<size_t>(s)] = (next[static_cast<size_t>(s)] * 31 + step) % m.vocabSize();
    }
    return Status::ok();
  };
  // Warm-up: the same steps once, untimed, so that the KV pool's pages the timed steps write
  // have been faulted in, as in a server after its first requests (a fresh 2 MiB page costs the
  // step that first writes it a zero-fill: ~0.1 ms per medium step here, paid once per page).
  TURBINE_RETURN_IF_ERROR(decodeSteps(a.steps));
  step = 0;
  std::fill(next.begin(), next.end(), 1);
  // The steps run in --windows windows, the bandwidth measured between them (the VM's bandwidth
  // drifts over seconds). A window's limit is the larger copy figure of the measures on its two
  // sides (the stricter choice); the run's overall limit the largest of all.
  const int windows = std::clamp(a.windows, 1, a.steps);
  const int reps = windows == 1 ? 5 : 1;
  Bandwidth before = measureBandwidth(bw_pool, reps);
  Bandwidth best = before;
  std::vector<double> fractions;
  double dt = 0;
  for (int w = 0; w < windows; ++w) {
    const int count = a.steps / windows + (w < a.steps % windows ? 1 : 0);
    const auto t0 = Clock::now();
    TURBINE_RETURN_IF_ERROR(decodeSteps(count));
    const double wdt = seconds(t0, Clock::now());
    dt += wdt;
    const Bandwidth after = measureBandwidth(bw_pool, reps);
    const double limit = std::max(before.copy, after.copy);
    fractions.push_back(count / wdt * static_cast<double>(step_bytes) / limit);
    best = {std::max(best.copy, after.copy), std::max(best.read, after.read)};
    before = after;
  }
  std::sort(fractions.begin(), fractions.end());
  const double steps_per_s = a.steps / dt;
  const double gbs = steps_per_s * static_cast<double>(step_bytes) / 1e9;
  std::printf(
      "{\"bench\": \"decode\", \"model\": \"%s\", \"kv\": \"%s\", \"threads\": %d, "
      "\"batch\": %d, \"context\": %d, \"tok_per_s\": %.1f, \"ms_per_step\": %.2f, "
      "\"weight_bytes_per_step\": %zu, \"weight_GB_per_s\": %.2f, \"copy_GB_per_s\": %.2f, "
      "\"read_GB_per_s\": %.2f, \"fraction_of_bandwidth_limit\": %.3f, "
      "\"fraction_of_read\": %.3f, \"windows\": %d, \"window_fraction_min\": %.3f, "
      "\"window_fraction_median\": %.3f, \"window_fraction_max\": %.3f}\n",
      name.c_str(), kvDTypeName(m.kvCache().dtype()), a.threads, batch, a.context,
      steps_per_s * batch, 1e3 / steps_per_s, step_bytes,
      gbs, best.copy / 1e9, best.read / 1e9, gbs * 1e9 / best.copy, gbs * 1e9 / best.read,
      windows, fractions.front(), fractions[fractions.size() / 2], fractions.back());
  std::fflush(stdout);
  return Status::ok();
}

Status benchModel(const Args& a, const std::string& dtype, cpu::ThreadPool& bw_pool) {
  TURBINE_ASSIGN_OR_RETURN(std::string path, ensureModel(a, dtype));
  const auto load0 = Clock::now();
  TURBINE_ASSIGN_OR_RETURN(model::ModelWeights w, model::loadModel(path));
  const bool copied = !w.files.empty() && w.files.front()->anonymous();
  std::printf(
      "{\"bench\": \"load\", \"model\": \"%s-%s\", \"weights\": \"%s\", \"seconds\": %.3f}\n",
      a.preset.c_str(), dtype.c_str(), copied ? "huge-page copy" : "file map",
      seconds(load0, Clock::now()));
  const size_t step_bytes = weightBytesPerStep(w);
  int max_batch = 1;
  for (int b : a.batches) max_batch = std::max(max_batch, b);
  LlamaModelOptions o;
  o.threads = a.threads;
  o.max_model_len = std::max(a.prompt, a.context + a.steps) + 16;
  o.num_blocks = (max_batch + 1) * ((o.max_model_len + o.block_size - 1) / o.block_size);
  o.kv_dtype = kvDTypeFromName(a.kv_dtype);  // nullopt for "auto"
  TURBINE_ASSIGN_OR_RETURN(
      auto m, LlamaModel::create(std::make_shared<model::ModelWeights>(std::move(w)), o));
  // Fault the weights in before timing.
  std::vector<float> logits(static_cast<size_t>(m->vocabSize()));
  const std::vector<int32_t> warm = {1};
  const std::vector<BlockId> table = {0};
  TURBINE_RETURN_IF_ERROR(m->forward({{{warm, 0, table, true}}}, logits));
  const std::string name = a.preset + "-" + dtype;
  TURBINE_RETURN_IF_ERROR(benchPrefill(*m, a, name));
  for (int b : a.batches) TURBINE_RETURN_IF_ERROR(benchDecode(*m, a, name, b, step_bytes, bw_pool));
  return Status::ok();
}

}  // namespace
}  // namespace turbine::engine

int main(int argc, char** argv) {
  turbine::engine::cpu::reexecForBlasCore(argv);
  using namespace turbine::engine;
  Args a;
  if (!parseArgs(argc, argv, a)) {
    std::fprintf(stderr,
                 "usage: forward_bench [--preset P] [--dtypes a,b] [--threads N] "
                 "[--prompt N] [--prefill-reps N] [--context N] [--steps N] [--windows N] [--batches 1,4] "
                 "[--models DIR] [--isa auto|avx512bf16|avx512|avx2|scalar] "
                 "[--kv-dtype auto|f32|f16|bf16]\n");
    return 2;
  }
  if (!cpu::setKernelIsa(a.isa.c_str())) {
    std::fprintf(stderr, "forward_bench: this CPU has no %s kernels\n", a.isa.c_str());
    return 2;
  }
  cpu::ThreadPool bw_pool(a.threads);
  const Bandwidth bw = measureBandwidth(bw_pool, 5);
  std::printf(
      "{\"bench\": \"membw\", \"threads\": %d, \"copy_GB_per_s\": %.2f, "
      "\"read_GB_per_s\": %.2f, \"isa\": \"%s\"}\n",
      a.threads, bw.copy / 1e9, bw.read / 1e9, cpu::kernelIsa());
  std::fflush(stdout);
  for (const std::string& dtype : a.dtypes) {
    const turbine::Status st = benchModel(a, dtype, bw_pool);
    if (!st.isOk()) {
      std::fprintf(stderr, "forward_bench: %s: %s\n", dtype.c_str(), st.toString().c_str());
      return 1;
    }
  }
  return 0;
}
