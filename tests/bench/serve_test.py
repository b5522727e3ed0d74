#!/usr/bin/python3
"""`turbine bench` against a real `turbine serve` with a tiny model (issue 6's tests):
request and token counts and timing fields are consistent, the multi-turn workload reports
cached tokens (the prefix cache works across turns), report.json has its fields, plots are PNGs.

usage: serve_test.py TURBINE_BINARY TINY_MODEL_DIR WORK_DIR
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import unittest

BIN = MODEL = WORK = None


class Server:
    def __init__(self, *extra):
        args = [BIN, "serve", "--model", MODEL, "--port", "0", "--workers", "2", "--threads", "2",
                "--max-model-len", "2048", "--kv-cache-memory", "16MiB", "--served-model-name", "tiny",
                *extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log, self.url = "", None
        ready = threading.Event()

        def pump():
            for raw in self.proc.stderr:
                self.log += raw.decode("utf-8", "replace")
                m = re.search(r"listening on (http://[\d.]+:\d+)", self.log)
                if m and not ready.is_set():
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(60) or self.url is None:
            self.proc.kill()
            raise RuntimeError("turbine serve did not start:\n" + self.log)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def bench(url, out, *args):
    p = subprocess.run([BIN, "bench", "--url", url, "--model", "tiny", "--out", out, *args],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"turbine bench failed ({p.returncode}):\n{p.stderr}")
    with open(os.path.join(out, "report.json")) as f:
        return json.load(f)


class BenchAgainstServe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def check_report(self, rep, requests, out_len):
        agg = rep["aggregates"] if "aggregates" in rep else rep
        self.assertEqual(agg["requests_ok"], requests)
        self.assertEqual(agg["requests_failed"], 0)
        self.assertGreater(agg["output_tokens_per_s"], 0)
        for k in ("ttft_ms", "itl_ms", "e2e_ms"):
            for p in ("p50", "p90", "p99"):
                self.assertIn(p, agg[k])
            self.assertLessEqual(agg[k]["p50"], agg[k]["p99"])
        reqs = rep["requests"]
        self.assertEqual(len(reqs), requests)
        for r in reqs:
            if out_len is not None:
                self.assertEqual(r["completion_tokens"], out_len)
            self.assertLessEqual(r["ttft_ms"], r["e2e_ms"])
            # One gap per SSE chunk after the first. A chunk may carry more than one token (the
            # server holds back bytes of an unfinished UTF-8 character), never fewer than one.
            self.assertEqual(len(r["itl_ms"]), r["chunks"] - 1)
            self.assertLessEqual(r["chunks"], r["completion_tokens"])
            self.assertGreaterEqual(r["chunks"], 2)
            self.assertLessEqual(sum(r["itl_ms"]), r["e2e_ms"] - r["ttft_ms"] + 1e-3)
        return agg, reqs

    def test_synthetic_completions(self):
        out = os.path.join(WORK, "synthetic")
        rep = bench(self.server.url, out, "--workload", "synthetic", "--requests", "12",
                    "--concurrency", "4", "--input-len", "48", "--output-len", "16", "--seed", "1")
        _, reqs = self.check_report(rep, 12, 16)
        for r in reqs:
            self.assertEqual(r["prompt_tokens"], 48)
        for png in ("ttft_cdf.png", "itl_cdf.png", "throughput.png", "concurrency.png"):
            with open(os.path.join(out, png), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", png)

    def test_multiturn_hits_the_prefix_cache(self):
        out = os.path.join(WORK, "multiturn")
        rep = bench(self.server.url, out, "--workload", "multiturn", "--users", "3", "--turns", "3",
                    "--input-len", "40", "--output-len", "8", "--seed", "2")
        _, reqs = self.check_report(rep, 9, 8)
        # Later turns resend the conversation so far: the KV router sends them back to the
        # worker that holds it, and that worker serves the shared blocks from its cache.
        self.assertGreater(sum(r.get("cached_tokens", 0) for r in reqs), 0)


if __name__ == "__main__":
    BIN, MODEL, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(WORK, exist_ok=True)
    unittest.main(argv=sys.argv[:1], verbosity=2)
