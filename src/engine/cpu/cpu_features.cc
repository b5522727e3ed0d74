// Run-time choice of the kernel table: the best level the CPU (and OS) supports, which tests
// and benchmarks may lower with setKernelIsa().
#include <cblas.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "engine/cpu/kernels.h"
#include "engine/cpu/kernels_internal.h"

namespace turbine::engine::cpu {
namespace internal {
namespace {

Isa detectIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
  if (!avx2) return Isa::kScalar;
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (!avx512) return Isa::kAvx2;
  if (__builtin_cpu_supports("avx512bf16")) return Isa::kAvx512Bf16;
  return Isa::kAvx512;
#else
  return Isa::kScalar;
#endif
}

std::atomic<int>& currentSlot() {
  static std::atomic<int> slot{static_cast<int>(bestIsa())};
  return slot;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Bf16:
      return "avx512bf16";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kScalar:
      return "scalar";
  }
  return "scalar";
}

}  // namespace

Isa bestIsa() {
  static const Isa best = detectIsa();
  return best;
}

Isa currentIsa() { return static_cast<Isa>(currentSlot().load(std::memory_order_relaxed)); }

void setCurrentIsa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(bestIsa())) isa = bestIsa();
  currentSlot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

namespace {
// -1: the default; 0 / 1: forced (overrideWeightPrefetch, overrideBf16DotGemm).
std::atomic<int> g_weight_prefetch{-1};
std::atomic<int> g_bf16_dot_gemm{-1};

bool isIntel() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_is("intel") != 0;
#else
  return false;
#endif
}

// The default of a choice made per CPU vendor, read once: the environment variable `env` (on
// unless it says `off_word`), else `by_vendor`.
bool vendorDefault(const char* env, const char* off_word, bool by_vendor) {
  if (const char* v = std::getenv(env); v && *v) return std::strcmp(v, off_word) != 0;
  return by_vendor;
}

// Forced, else the default (called per matmul: one relaxed load).
bool choice(const std::atomic<int>& forced, bool by_default) {
  const int f = forced.load(std::memory_order_relaxed);
  return f >= 0 ? f != 0 : by_default;
}
}  // namespace

bool weightPrefetch() {
  static const bool by_default = vendorDefault("TURBINE_WEIGHT_PREFETCH", "0", isIntel());
  return choice(g_weight_prefetch, by_default);
}

bool bf16DotGemm() {
  static const bool by_default = vendorDefault("TURBINE_BF16_GEMM", "f32", !isIntel());
  return choice(g_bf16_dot_gemm, by_default);
}

const KernelTable& currentKernels() {
  switch (currentIsa()) {
    case Isa::kAvx512Bf16:
      return avx512Bf16Kernels();
    case Isa::kAvx512:
      return avx512Kernels();
    case Isa::kAvx2:
      return avx2Kernels();
    case Isa::kScalar:
      break;
  }
  return scalarKernels();
}

}  // namespace internal

const char* kernelIsa() { return internal::isaName(internal::currentIsa()); }

const char* blasCoreName() { return openblas_get_corename(); }

void overrideWeightPrefetch(std::optional<bool> on) {
  internal::g_weight_prefetch.store(on ? static_cast<int>(*on) : -1, std::memory_order_relaxed);
}

void overrideBf16DotGemm(std::optional<bool> on) {
  internal::g_bf16_dot_gemm.store(on ? static_cast<int>(*on) : -1, std::memory_order_relaxed);
}

void reexecForBlasCore(char** argv) {
#if defined(__linux__) && defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // chosen by the user, or done
  if (std::strcmp(openblas_get_corename(), "Prescott") != 0) return;
  __builtin_cpu_init();
  const char* core = nullptr;
  if (__builtin_cpu_supports("avx512bf16")) core = "Cooperlake";
  else if (__builtin_cpu_supports("avx512f")) core = "SkylakeX";
  else if (__builtin_cpu_supports("avx2")) core = "Haswell";
  if (core == nullptr) return;
  ::setenv("OPENBLAS_CORETYPE", core, 1);
  ::execv("/proc/self/exe", argv);
  // exec failed: go on with the generic kernels (the variable stays set, so no second try).
#else
  (void)argv;
#endif
}

bool setKernelIsa(const char* isa) {
  using internal::Isa;
  Isa want = internal::bestIsa();
  if (isa != nullptr && std::strcmp(isa, "auto") != 0 && isa[0] != '\0') {
    if (std::strcmp(isa, "avx512bf16") == 0) {
      want = Isa::kAvx512Bf16;
    } else if (std::strcmp(isa, "avx512") == 0) {
      want = Isa::kAvx512;
    } else if (std::strcmp(isa, "avx2") == 0) {
      want = Isa::kAvx2;
    } else if (std::strcmp(isa, "scalar") == 0) {
      want = Isa::kScalar;
    } else {
      return false;
    }
  }
  if (static_cast<int>(want) > static_cast<int>(internal::bestIsa())) return false;
  internal::setCurrentIsa(want);
  return true;
}

}  // namespace turbine::engine::cpu
