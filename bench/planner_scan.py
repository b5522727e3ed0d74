#!/usr/bin/env python3
"""The SLA planner against fixed fleets, in the simulator (docs/planner.md).

For each trace: `turbine simulate --planner sla` at several --max-utilization values, and fixed
fleets of 1..--max-static workers, all at the same targets; prints cost (worker-hours) and SLO
attainment (requests within the targets) of each, then, for each planner run, the cheapest fixed
fleet that does at least as well and the cost ratio. Two traces:
  azure  the Azure conversation hour as recorded (5.5 req/s mean, per-minute 0.6-8.5);
  day    a constructed one: the Azure hour's request lengths on a day-shaped rate compressed into
         an hour (rate(t) = 1 + 9 sin^2(pi t / 3600) req/s), to show what following a load that
         moves is worth. Constructed, not recorded.
With --modes agg,disagg the planner also plans a disaggregated fleet (prefill + decode workers,
every prompt over --max-local-prefill-tokens prefilled remotely and its KV moved at the profile's
onboard_us_per_token), compared against the same fixed aggregated fleets.
Workers: the default timing profile slowed --time-scale (0.1: a ten times bigger model). Virtual
time: the figures do not depend on the machine. Usage:
  bench/planner_scan.py --azure ../shared/data/traces/AzureLLMInferenceTrace_conv.csv \
      [--turbine build/bin/turbine] [--ttft-ms 5000 --itl-ms 300]
"""
import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile


def simulate(args, trace, tmp, name, extra):
    out = os.path.join(tmp, name + ".json")
    cmd = [args.turbine, "simulate", "--trace", trace, "--router", "least-loaded", "--block-size", "16",
           "--kv-blocks-per-worker", "65536", "--time-scale", str(args.time_scale),
           "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms), "--out", out, *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(out) as f:
        return json.load(f)


def day_trace(azure, path, seed=1):
    """The Azure rows' lengths, in order, at times drawn from a day-shaped Poisson rate."""
    with open(azure) as f:
        rows = list(csv.reader(f))[1:]
    rnd, t, out = random.Random(seed), 0.0, []
    peak = 10.0
    for _, n_in, n_out in rows:
        while True:  # thinning
            t += rnd.expovariate(peak)
            if rnd.random() * peak <= 1 + 9 * math.sin(math.pi * t / 3600) ** 2:
                break
        if t >= 3600:
            break
        out.append((t, n_in, n_out))
    with open(path, "w") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for ts, n_in, n_out in out:
            h, rem = divmod(ts, 3600)
            m, s = divmod(rem, 60)
            f.write(f"2024-01-01 {int(h):02d}:{int(m):02d}:{s:010.7f},{n_in},{n_out}\n")
    return len(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--azure", required=True)
    p.add_argument("--turbine", default="build/bin/turbine")
    p.add_argument("--ttft-ms", type=float, default=5000)
    p.add_argument("--itl-ms", type=float, default=300)
    p.add_argument("--time-scale", type=float, default=0.1)
    p.add_argument("--max-static", type=int, default=12)
    p.add_argument("--utilizations", default="0.8,0.7,0.6")
    p.add_argument("--interval", type=float, default=30)
    p.add_argument("--startup", type=float, default=30)
    p.add_argument("--modes", default="agg", help="planner fleets: agg, disagg or agg,disagg")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        day = os.path.join(tmp, "day.csv")
        n = day_trace(args.azure, day)
        print(f"day trace: {n} requests in an hour (constructed)")
        for label, trace in (("azure", args.azure), ("day", day)):
            static = []
            for w in range(1, args.max_static + 1):
                r = simulate(args, trace, tmp, f"{label}-static-{w}", ["--workers", str(w)])
                static.append((w, r["worker_seconds"] / 3600, r["slo"]["attainment"]))
                print(f"{label} fixed {w:2d} workers: {static[-1][1]:6.2f} worker-h, attainment {static[-1][2]:.4f}, "
                      f"TTFT mean {r['ttft_ms']['mean']:.0f} ms, ITL mean {r['itl_ms']['mean']:.1f} ms")
            for mode, u in ((m, u) for m in args.modes.split(",") for u in args.utilizations.split(",")):
                fleet = ["--workers", "2"] if mode == "agg" else ["--mode", "disagg", "--workers", "1",
                                                                  "--prefill-workers", "1"]
                r = simulate(args, trace, tmp, f"{label}-plan-{mode}-{u}",
                             ["--planner", "sla", *fleet, "--max-workers", "64", "--max-utilization", u,
                              "--adjustment-interval", str(args.interval), "--worker-startup", str(args.startup)])
                cost, att = r["worker_seconds"] / 3600, r["slo"]["attainment"]
                better = [s for s in static if s[2] >= att]
                ref = min(better, key=lambda s: s[1]) if better else None
                vs = (f"cheapest fixed fleet as good: {ref[0]} workers, {ref[1]:.2f} worker-h -> planner "
                      f"{cost / ref[1]:.2f}x its cost") if ref else "no fixed fleet up to --max-static is as good"
                print(f"{label} {mode} planner (max utilization {u}): {cost:6.2f} worker-h, attainment {att:.4f}, "
                      f"peak {r['peak_workers']}, TTFT mean {r['ttft_ms']['mean']:.0f} ms, ITL mean "
                      f"{r['itl_ms']['mean']:.1f} ms | {vs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
