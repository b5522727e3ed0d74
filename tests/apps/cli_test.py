#!/usr/bin/env python3
"""End-to-end tests of the `turbine` binary: make-model, generate, usage and file errors.

Usage: cli_test.py BUILD_DIR
"""
import os
import subprocess
import sys
import tempfile
import unittest

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
TURBINE = os.path.join(BUILD, "bin", "turbine")


def run(*args, check=False):
    p = subprocess.run([TURBINE, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"turbine {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.hf = os.path.join(cls.tmp.name, "tiny-hf")
        cls.gguf = os.path.join(cls.tmp.name, "tiny.gguf")
        run("make-model", "--preset", "tiny", "--format", "hf", "--seed", "7", "--out", cls.hf, check=True)
        run("make-model", "--preset", "tiny", "--format", "gguf", "--seed", "7", "--out", cls.gguf, check=True)

    def test_version(self):
        p = run("version", check=True)
        self.assertRegex(p.stdout, r"^turbine \d+\.\d+\.\d+")

    def test_openblas_runs_kernels_for_this_cpu(self):
        # OpenBLAS 0.3.21 falls back to its SSE3 "Prescott" kernels on CPUs it does not know;
        # turbine then re-executes itself onto the newest core of the CPU's ISA that it knows.
        env = dict(os.environ, OPENBLAS_VERBOSE="2")
        env.pop("OPENBLAS_CORETYPE", None)
        p = subprocess.run([TURBINE, "version"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^turbine \d+\.\d+\.\d+")
        cores = [l.split(":", 1)[1].strip() for l in p.stderr.splitlines() if l.startswith("Core:")]
        with open("/proc/cpuinfo") as f:
            avx2 = " avx2" in f.read()
        if not cores:
            self.skipTest("this OpenBLAS does not say its core (OPENBLAS_VERBOSE)")
        if avx2:
            self.assertNotEqual(cores[-1], "Prescott", p.stderr)
        # A core the user chose is kept: no re-execution.
        env["OPENBLAS_CORETYPE"] = "Prescott"
        p = subprocess.run([TURBINE, "version"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([l for l in p.stderr.splitlines() if l.startswith("Core:")], ["Core: Prescott"])

    def test_help_lists_subcommands(self):
        p = run("--help", check=True)
        for sub in ("version", "make-model", "generate"):
            self.assertIn(sub, p.stdout)

    def test_usage_errors_exit_2_with_one_line(self):
        for args in (["make-model", "--preset", "huge", "--out", "x"],
                     ["make-model", "--dtype", "q8_0", "--format", "hf", "--out", "x"],
                     ["generate", "--model", self.hf],
                     ["generate", "--model", self.hf, "--prompt", "a", "--max-tokens", "zero"],
                     ["serve", "--model", self.hf, "--tool-call-parser", "hermes"],
                     ["serve", "--model", self.hf, "--enable-auto-tool-choice"],
                     ["serve", "--model", self.hf, "--reasoning-parser", "o1"],
                     ["frontend", "--etcd", "http://127.0.0.1:1", "--namespace", "x",
                      "--enable-auto-tool-choice", "--tool-call-parser", "xml"],
                     ["worker", "--model", self.hf, "--role", "both"],
                     ["worker", "--model", self.hf, "--role", "prefill", "--engine", "upstream"],
                     ["worker", "--model", self.hf, "--transfer-port", "70000"],
                     ["frontend", "--max-local-prefill-tokens", "-1"],
                     ["planner", "--ttft-ms", "100", "--itl-ms", "10"],
                     ["planner", "--frontend", "http://127.0.0.1:1", "--connector", "k8s"],
                     ["planner", "--frontend", "http://127.0.0.1:1", "--itl-ms", "0"],
                     ["planner", "--frontend", "http://127.0.0.1:1", "--mode", "both"],
                     ["no-such-command"]):
            p = run(*args)
            self.assertEqual(p.returncode, 2, f"{args}: {p.stderr}")
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, f"{args}: {p.stderr!r}")

    def test_profile_fits_a_timing_profile_the_simulator_takes(self):
        import json
        out = os.path.join(self.tmp.name, "profile.json")
        p = run("profile", "--model", self.hf, "--threads", "1", "--reps", "1", "--max-tokens", "64",
                "--out", out, check=True)
        self.assertIn("fit over", p.stdout)
        with open(out) as f:
            prof = json.load(f)
        self.assertGreater(prof["prefill_us_per_token"], 0)  # computing tokens costs time
        for key in ("step_base_us", "attention_us_per_pair", "decode_us_per_seq", "kv_read_us_per_token"):
            self.assertGreaterEqual(prof[key], 0, key)
        trace = os.path.join(self.tmp.name, "tiny-trace.jsonl")
        with open(trace, "w") as f:
            for i in range(20):
                f.write(json.dumps({"timestamp": 100 * i, "input_length": 40, "output_length": 4,
                                    "hash_ids": [i]}) + "\n")
        sim = run("simulate", "--trace", trace, "--workers", "1", "--block-size", "64", "--profile", out, check=True)
        self.assertIn("20 completed", sim.stdout)
        bad = run("profile", "--model", os.path.join(self.tmp.name, "nowhere"))
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)

    def test_planner_errors_are_one_line(self):
        for args, needle in ((["--ttft-ms", "100", "--itl-ms", "10", "--connector", "local"], "--worker-command"),
                             (["--ttft-ms", "100", "--itl-ms", "10", "--connector", "local", "--mode", "disagg",
                               "--worker-command", "true"], "--prefill-command"),
                             (["--ttft-ms", "100", "--itl-ms", "10", "--connector", "etcd"], "--etcd"),
                             (["--itl-ms", "10"], "--ttft-ms"),
                             (["--ttft-ms", "100", "--itl-ms", "10", "--min-workers", "3", "--max-workers", "2"],
                              "max workers"),
                             (["--ttft-ms", "100", "--itl-ms", "10"], "Connection refused")):
            p = run("planner", "--frontend", "http://127.0.0.1:1", *args)
            self.assertEqual(p.returncode, 1, f"{args}: {p.stderr}")
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, f"{args}: {p.stderr!r}")
            self.assertIn(needle, p.stderr)

    def test_bad_model_file_is_one_line_error(self):
        bad = os.path.join(self.tmp.name, "bad.gguf")
        with open(self.gguf, "rb") as f:
            data = f.read()
        with open(bad, "wb") as f:
            f.write(data[: len(data) // 2])
        p = run("generate", "--model", bad, "--prompt", "hi")
        self.assertEqual(p.returncode, 1)
        last = p.stderr.strip().splitlines()[-1]
        self.assertIn("bad.gguf", last)
        self.assertIn("error", last)

    def test_generate_token_ids_are_deterministic_and_match_across_formats(self):
        a = run("generate", "--model", self.hf, "--prompt-ids", "1,2,3,4", "--max-tokens", "24",
                "--print-token-ids", "--ignore-eos", check=True)
        b = run("generate", "--model", self.gguf, "--prompt-ids", "1,2,3,4", "--max-tokens", "24",
                "--print-token-ids", "--ignore-eos", check=True)
        ids = a.stdout.split()
        self.assertEqual(len(ids), 24)
        self.assertGreater(len(set(ids)), 1, "greedy output is one token repeated")
        self.assertEqual(ids, b.stdout.split(), "HF and GGUF of the same weights differ")
        self.assertIn("tokens/s", a.stderr)

    def test_generate_text_and_seeded_sampling(self):
        p = run("generate", "--model", self.hf, "--prompt", "The quick brown fox", "--max-tokens", "16",
                "--ignore-eos", check=True)
        self.assertTrue(p.stdout.strip())
        s1 = run("generate", "--model", self.hf, "--prompt", "Hello", "--temperature", "1.0",
                 "--seed", "5", "--max-tokens", "16", "--print-token-ids", "--ignore-eos", check=True)
        s2 = run("generate", "--model", self.hf, "--prompt", "Hello", "--temperature", "1.0",
                 "--seed", "5", "--max-tokens", "16", "--print-token-ids", "--ignore-eos", check=True)
        s3 = run("generate", "--model", self.hf, "--prompt", "Hello", "--temperature", "1.0",
                 "--seed", "6", "--max-tokens", "16", "--print-token-ids", "--ignore-eos", check=True)
        self.assertEqual(s1.stdout, s2.stdout)
        self.assertNotEqual(s1.stdout, s3.stdout)

    def test_simulate_writes_its_report_and_a_host_tier_raises_hits(self):
        # A Mooncake-format trace: 12 conversations whose histories grow turn by turn.
        import json
        import random
        rnd = random.Random(5)
        trace = os.path.join(self.tmp.name, "trace.jsonl")
        history, next_id, t = [[] for _ in range(12)], 0, 0
        with open(trace, "w") as f:
            for _ in range(240):
                h = history[rnd.randrange(12)]
                for _ in range(1 + rnd.randrange(3)):
                    h.append(next_id)
                    next_id += 1
                f.write(json.dumps({"timestamp": t, "input_length": 16 * len(h), "output_length": 8,
                                    "hash_ids": h}) + "\n")
                t += 40
        reports = {}
        for host in ("0", "256"):
            out = os.path.join(self.tmp.name, f"sim-{host}.json")
            run("simulate", "--trace", trace, "--workers", "2", "--kv-blocks-per-worker", "24",
                "--block-size", "16", "--host-blocks-per-worker", host, "--out", out, check=True)
            with open(out) as f:
                reports[host] = json.load(f)
        r = reports["0"]
        self.assertEqual(r["requests"], 240)
        for key in ("ttft_ms", "itl_ms", "e2e_ms"):
            self.assertLessEqual(r[key]["p50"], r[key]["p99"])
        self.assertGreater(r["output_tokens_per_s"], 0)
        self.assertLessEqual(r["prefix_hit_ratio"], r["infinite_cache_hit_ratio"])
        self.assertEqual(reports["256"]["host_blocks_per_worker"], 256)
        self.assertGreater(reports["256"]["prefix_hit_ratio"], r["prefix_hit_ratio"] + 0.05)
        p = run("simulate", "--trace", trace, "--host-blocks-per-worker", "-1")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        self.assertIn("--host-blocks-per-worker", p.stderr)

    def azure_ramp(self, name):
        """An Azure CSV trace (lengths only): 2 req/s for 60 s, then 20 req/s for 60 s, then 2 again."""
        import random
        rnd = random.Random(9)
        trace = os.path.join(self.tmp.name, name)
        rows, t = [], 0.0
        for seconds, rate in ((60, 2), (60, 20), (60, 2)):
            end = t + seconds
            while True:
                t += rnd.expovariate(rate)
                if t >= end:
                    t = end
                    break
                rows.append((t, 500 + rnd.randrange(1500), 50 + rnd.randrange(200)))
        with open(trace, "w") as f:
            f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
            for ts, n_in, n_out in rows:
                f.write(f"2023-11-16 18:{int(ts // 60):02d}:{ts % 60:010.7f},{n_in},{n_out}\n")
        return trace, rows

    def test_simulate_with_the_planner_on_an_azure_trace(self):
        import json
        trace, rows = self.azure_ramp("azure.csv")
        out = os.path.join(self.tmp.name, "planned.json")
        run("simulate", "--trace", trace, "--planner", "sla", "--ttft-ms", "1000", "--itl-ms", "40",
            "--workers", "1", "--max-workers", "16", "--adjustment-interval", "10", "--worker-startup", "5",
            "--block-size", "16", "--kv-blocks-per-worker", "8192", "--time-scale", "0.5", "--out", out,
            check=True)
        with open(out) as f:
            r = json.load(f)
        self.assertEqual(r["requests"], len(rows))
        self.assertEqual(r["completed"], len(rows))
        self.assertEqual(r["prefix_hit_ratio"], 0)  # every Azure prompt is distinct
        self.assertEqual(r["planner"]["policy"], "sla")
        wanted = [p["wanted"] for p in r["timeline"]]
        self.assertEqual(wanted[0], 1)
        self.assertGreater(max(wanted), 2)  # scaled up for the busy minute...
        self.assertLess(wanted[-1], max(wanted))  # ...and back down
        self.assertLess(r["worker_seconds"], r["peak_workers"] * r["makespan_s"])
        self.assertGreater(r["slo"]["attainment"], 0.5)
        self.assertEqual(r["slo"]["ttft_ms"], 1000)
        for bad in (["--planner", "sla"], ["--planner", "sla", "--ttft-ms", "100", "--itl-ms", "10",
                                           "--min-workers", "5", "--max-workers", "4"]):
            p = run("simulate", "--trace", trace, *bad)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
            self.assertIn("planner", p.stderr)

    def test_simulate_a_disaggregated_fleet_with_the_planner(self):
        import json
        trace, rows = self.azure_ramp("azure-disagg.csv")
        out = os.path.join(self.tmp.name, "disagg.json")
        run("simulate", "--trace", trace, "--planner", "sla", "--mode", "disagg", "--ttft-ms", "1000",
            "--itl-ms", "40", "--workers", "1", "--prefill-workers", "1", "--max-workers", "16",
            "--adjustment-interval", "10", "--worker-startup", "5", "--block-size", "16",
            "--kv-blocks-per-worker", "8192", "--time-scale", "0.5", "--out", out, check=True)
        with open(out) as f:
            r = json.load(f)
        self.assertEqual(r["completed"], len(rows))
        self.assertEqual(r["planner"]["mode"], "disagg")
        self.assertEqual(r["prefill_workers"], 1)
        d = r["disaggregation"]
        long_prompts = sum(1 for _, n_in, _ in rows if n_in > 512)
        self.assertGreater(d["remote_prefills"], long_prompts * 0.9)  # few fall back (none while one serves)
        self.assertGreater(d["transferred_blocks"], d["remote_prefills"] * 512 // 16)
        roles = {w["role"] for w in r["per_worker"]}
        self.assertEqual(roles, {"prefill", "decode"})
        prefill = [p["prefill_wanted"] for p in r["timeline"]]
        decode = [p["wanted"] for p in r["timeline"]]
        self.assertGreater(max(prefill), 1)  # both pools grow for the busy minute...
        self.assertLess(prefill[-1], max(prefill))  # ...and shrink after it
        self.assertGreaterEqual(max(decode), 1)
        for bad, names in ((["--mode", "disagg"], "--prefill-workers"),
                           (["--prefill-workers", "1"], "--mode disagg")):
            p = run("simulate", "--trace", trace, "--planner", "sla", "--ttft-ms", "100", "--itl-ms", "10", *bad)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
            self.assertIn(names, p.stderr)

    def test_make_model_is_deterministic(self):
        other = os.path.join(self.tmp.name, "again.gguf")
        run("make-model", "--preset", "tiny", "--format", "gguf", "--seed", "7", "--out", other, check=True)
        with open(other, "rb") as f1, open(self.gguf, "rb") as f2:
            self.assertEqual(f1.read(), f2.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
