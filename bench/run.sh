#!/usr/bin/env bash
# `make bench`: runs every benchmark and writes their raw output to BUILD/bench-results/.
# The figures that docs/benchmarks.md records come from these runs (machine, commit, date below).
# Run on a quiet machine: the benchmarks share its cores with nothing else.
set -uo pipefail
BUILD=${1:-build}
OUT="$BUILD/bench-results"
mkdir -p "$OUT"
B="$BUILD/bench"

{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  lscpu | grep -E '^(Model name|CPU\(s\)):' | sed 's/  */ /g'
} | tee "$OUT/machine.txt"

run() {  # run NAME CMD...: prints and saves the output; a failing benchmark does not stop the rest
  local name=$1; shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.txt"
}

run memory_bandwidth "$B/memory_bandwidth_bench" --benchmark_min_time=1
run kernels "$B/kernels_bench" --benchmark_filter='Gemv|DecodeMedium|PrefillMedium|Sgemm1024|Gemm/bf16|DecodeAttention'
run forward "$B/forward_bench" --preset medium --dtypes f32,bf16,f16,q8_0 --threads 2 --batches 1,4,16
run engine "$B/engine_bench" --preset medium --dtypes bf16,f32 --threads 2 --batches 1,4,16,64
run scheduler "$B/scheduler_bench"
[ -x "$B/frontend_bench" ] && run frontend "$B/frontend_bench" --streams 1,100,1000 --seconds 5
[ -x "$B/bench_client_bench" ] && run bench_client "$B/bench_client_bench" --concurrency 1000 --requests 3000
[ -x "$B/router_bench" ] && run router "$B/router_bench"
[ -x "$B/vllm_events_bench" ] && run vllm_events "$B/vllm_events_bench"
[ -x "$B/structured_bench" ] && run structured "$B/structured_bench"
[ -x "$B/kv_offload_bench" ] && run kv_offload "$B/kv_offload_bench" --threads 2
[ -x "$B/transfer_bench" ] && run transfer "$B/transfer_bench" --benchmark_min_time=0.5
[ -x "$B/disagg_bench" ] && run disagg "$B/disagg_bench" --threads 2
AZURE="$(dirname "$0")/../../shared/data/traces/AzureLLMInferenceTrace_conv.csv"
if [ -f "$AZURE" ]; then  # virtual time: the SLA planner against fixed fleets (docs/planner.md)
  run planner python3 "$(dirname "$0")/planner_scan.py" --azure "$AZURE" --turbine "$BUILD/bin/turbine"
else
  echo "== planner: skipped (no ../shared/data/traces/AzureLLMInferenceTrace_conv.csv)"
fi
echo "results in $OUT"
