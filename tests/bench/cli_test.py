"""End-to-end test of the `turbine bench` command line against the stub OpenAI server.

usage: cli_test.py TURBINE BENCH_CLIENT_BENCH WORKDIR
Checks: a synthetic run writes report.json with the required fields and non-empty PNG plots;
failed requests are counted, not fatal; a Mooncake trace replay; `bench compare`; clear errors
(exit 1) for an unreachable URL and a malformed trace line, and exit 2 for usage errors.
"""
import json
import os
import shutil
import subprocess
import sys

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(args, expect_rc):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if p.returncode != expect_rc:
        sys.exit(f"FAIL: {' '.join(args)} -> rc {p.returncode}, want {expect_rc}\n"
                 f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def check(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)


def main():
    turbine, stub_bin, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    stub = subprocess.Popen([stub_bin, "--serve", "60", "--ttft-ms", "5", "--itl-ms", "2",
                             "--fail-every", "10"], stdout=subprocess.PIPE, text=True)
    try:
        url = stub.stdout.readline().strip()
        check(url.startswith("http://127.0.0.1:"), "stub printed no URL: " + url)
        base = [turbine, "bench", "--url", url, "--model", "stub"]

        out_a = os.path.join(work, "a")
        p = run(base + ["--requests", "40", "--concurrency", "4", "--input-len", "uniform:10:50",
                        "--output-len", "12", "--out", out_a, "--slo-ttft-ms", "1000"], 0)
        check("requests ok / failed" in p.stdout, "no summary table:\n" + p.stdout)
        rep = json.load(open(os.path.join(out_a, "report.json")))
        ag = rep["aggregates"]
        check(ag["requests_ok"] == 36 and ag["requests_failed"] == 4, f"counts: {ag}")
        check(ag["errors"] == {"http_500": 4}, f"errors: {ag['errors']}")
        check(ag["output_tokens"] == 36 * 12, f"output tokens: {ag['output_tokens']}")
        check(ag["output_tokens_per_s"] > 0, "throughput")
        for m in ("ttft_ms", "itl_ms", "e2e_ms"):
            check(all(k in ag[m] for k in ("p50", "p90", "p99")), m)
        check(len(rep["requests"]) == 40, "per-request records")
        for name in ("ttft_cdf.png", "itl_cdf.png", "throughput.png", "concurrency.png"):
            with open(os.path.join(out_a, name), "rb") as f:
                check(f.read(8) == PNG_MAGIC, name + " is not a PNG")

        trace = os.path.join(work, "t.jsonl")
        with open(trace, "w") as f:
            for i in range(6):
                f.write(json.dumps({"timestamp": i * 20, "input_length": 700, "output_length": 4,
                                    "hash_ids": [0, i % 2]}) + "\n")
        out_b = os.path.join(work, "b")
        run(base + ["--workload", "trace", "--trace", trace, "--out", out_b, "--no-plots"], 0)
        rb = json.load(open(os.path.join(out_b, "report.json")))
        check(rb["aggregates"]["requests_total"] == 6, "trace request count")
        check(rb["aggregates"]["cached_tokens"] > 0, "trace replay shows no prefix reuse")

        p = run([turbine, "bench", "compare", os.path.join(out_a, "report.json"),
                 os.path.join(out_b, "report.json"), "--out", work], 0)
        check("B/A" in p.stdout and "ttft_ms p99" in p.stdout, "compare table:\n" + p.stdout)
        with open(os.path.join(work, "compare_ttft_cdf.png"), "rb") as f:
            check(f.read(8) == PNG_MAGIC, "compare plot")

        bad = os.path.join(work, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1,\n')
        p = run(base + ["--workload", "trace", "--trace", bad], 1)
        check("bad.jsonl:2:" in p.stderr, "malformed line not named:\n" + p.stderr)

        p = run([turbine, "bench", "--url", "http://127.0.0.1:1", "--model", "m"], 1)
        check("cannot connect" in p.stderr, "unreachable URL:\n" + p.stderr)
        run(base + ["--input-len", "uniform:9:3"], 2)
        run([turbine, "bench", "--url", url], 2)
        run([turbine, "bench", "compare", os.path.join(work, "missing.json"), trace], 1)
    finally:
        stub.kill()
        stub.wait()
    print("bench_cli: OK")


if __name__ == "__main__":
    main()
