#!/usr/bin/env python3
"""Round-robin's TTFT knee against the kv policy, per cache size (issue 5 §6).

For each --kv-blocks-per-worker value: finds round-robin's knee (the first --rate-scale, in steps
of --step, where its TTFT p50 reaches twice its p50 at the lowest rate), then runs kv there and
prints both p50s, hit ratios and their ratio. Virtual time: the figures do not depend on the
machine. Usage:
  bench/sim_knee_scan.py --trace ../shared/data/traces/mooncake_conversation_trace.jsonl \
      [--turbine build/bin/turbine] [--workers 16] [--blocks 1024,2048,4096,8192]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def simulate(args, policy, blocks, rate, tmp):
    out = os.path.join(tmp, f"{policy}_{blocks}_{rate}.json")
    cmd = [args.turbine, "simulate", "--trace", args.trace, "--workers", str(args.workers),
           "--kv-blocks-per-worker", str(blocks), "--router", policy, "--rate-scale", str(rate),
           "--out", out]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(out) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", required=True)
    p.add_argument("--turbine", default="build/bin/turbine")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--blocks", default="1024,2048,4096,8192")
    p.add_argument("--low", type=float, default=0.25, help="the 'unloaded' rate scale")
    p.add_argument("--step", type=float, default=0.25)
    p.add_argument("--max", type=float, default=12.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for blocks in (int(b) for b in args.blocks.split(",")):
            base = simulate(args, "round-robin", blocks, args.low, tmp)["ttft_ms"]["p50"]
            rate, knee = args.step, None
            while rate <= args.max:
                r = simulate(args, "round-robin", blocks, rate, tmp)
                if r["ttft_ms"]["p50"] >= 2 * base:
                    knee = r
                    break
                rate += args.step
            if knee is None:
                print(f"blocks {blocks}: round-robin has no knee up to {args.max}x")
                continue
            kv = simulate(args, "kv", blocks, rate, tmp)
            kv_low = simulate(args, "kv", blocks, args.low, tmp)["ttft_ms"]["p50"]
            ratio = knee["ttft_ms"]["p50"] / kv["ttft_ms"]["p50"]
            print(f"blocks {blocks}: round-robin unloaded p50 {base:.0f} ms, knee {rate}x: "
                  f"p50 {knee['ttft_ms']['p50']:.0f} ms (hit {knee['prefix_hit_ratio']:.3f}); "
                  f"kv there p50 {kv['ttft_ms']['p50']:.0f} ms (hit {kv['prefix_hit_ratio']:.3f}, "
                  f"pooled LRU {kv['pooled_oracle_hit_ratio']:.3f}): {ratio:.2f}x; "
                  f"kv unloaded p50 {kv_low:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
