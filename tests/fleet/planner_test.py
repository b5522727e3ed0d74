#!/usr/bin/python3
"""The SLA planner in front of a real fleet (docs/planner.md): a real etcd, `turbine frontend`, and
`turbine planner --connector local`, which runs `--engine mock` workers itself (a timing profile
slowed 20x, so a few Python clients are load enough).

  - it starts the minimum (one worker) and the model appears;
  - under load it starts more workers, and every request succeeds while it does;
  - when the load stops it drains them back to the minimum (their requests still succeed);
  - SIGTERM stops the planner and the workers it started, and it exits 0;
  - `--connector etcd` writes the plan to turbine/<ns>/planner/<model> for an orchestrator;
  - `--mode disagg` runs mock prefill and decode workers (which move their 8-byte mock KV blocks
    over the real transfer path): long prompts are prefilled remotely, the fleet grows under load
    (the prefill pool here: long prompts, 8-token outputs) and shrinks back to one worker of each
    role after it, and every request succeeds.

usage: planner_test.py TURBINE_BINARY TINY_MODEL_DIR
"""
import base64
import json
import os
import signal
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_test as ft  # noqa: E402  (the fleet helpers: etcd, processes, HTTP, metrics)

SLOW = "0.05"  # the mock workers run the default profile 20x slower; the planner is told so


def workers(frontend, model="tiny-planned"):
    return ft.metric(frontend, "turbine_fleet_workers", model=model)


class Load:
    """`clients` threads sending completions back to back until stop(); counts answers by status."""

    def __init__(self, frontend, clients, model="tiny-planned"):
        self.frontend, self.model, self.stopped, self.status = frontend, model, threading.Event(), {}
        self.lock = threading.Lock()
        self.cached = 0  # answers reporting cached prompt tokens (every prompt here is new)
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def loop(self, i):
        n = 0
        while not self.stopped.is_set():
            n += 1
            status, body = ft.http(self.frontend.url + "/v1/completions",
                                {"model": self.model, "prompt": ft.long_prompt(f"c{i}-{n}", 60),
                                 "max_tokens": 8}, timeout=120)
            with self.lock:
                self.status[status] = self.status.get(status, 0) + 1
                if status == 200 and ft.cached(body) > 0:
                    self.cached += 1

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(180)
        return self.status


class PlannedFleet(ft.FleetCase):
    """A frontend and `turbine planner --connector local` running mock workers serving cls.NAME;
    subclasses give the frontend's extra flags and the planner's mode flags (mode_flags)."""
    NAME, FRONTEND = None, ()

    @classmethod
    def start_fleet(cls):
        cls.frontend = ft.start_frontend(cls.etcd, "--router", "least-loaded", *cls.FRONTEND)
        cls.procs.append(cls.frontend)
        worker = " ".join([ft.BIN, "worker", "--model", ft.MODEL, "--served-model-name", cls.NAME,
                           "--engine", "mock", "--mock-speedup", SLOW, "--num-kv-blocks", "512",
                           "--etcd", cls.etcd.url, "--namespace", "fleet-test", "--lease-ttl", "2"])
        cls.planner = ft.Process(["planner", "--frontend", cls.frontend.url, "--model", cls.NAME,
                                  "--time-scale", SLOW, "--ttft-ms", "1500", "--itl-ms", "300",
                                  "--adjustment-interval", "1.5", "--scale-down-delay", "2",
                                  "--connector", "local", "--stop-timeout", "20", *cls.mode_flags(worker)],
                                 r"planning \w+ workers")
        cls.procs.append(cls.planner)

    @classmethod
    def cleanup(cls):
        os.system(f"pkill -KILL -f 'served-model-name {cls.NAME} ' 2>/dev/null")  # orphans, if any


class PlannerTest(PlannedFleet):
    NAME = "tiny-planned"

    @staticmethod
    def mode_flags(worker):
        return ["--max-workers", "4", "--worker-command", worker]

    def test_1_starts_the_minimum_then_follows_the_load_up_and_down(self):
        ft.wait_until(lambda: workers(self.frontend) == 1, 30, "the planner's first worker")
        self.assertIn("started with agg 1", self.planner.log)
        load = Load(self.frontend, 24)
        try:
            ft.wait_until(lambda: workers(self.frontend) >= 3, 60, "the planner to add workers under load")
            peak = workers(self.frontend)
        finally:
            answered = load.stop()
        self.assertEqual(set(answered), {200}, answered)
        # A light load while it drains the extra workers: nothing is lost.
        light = Load(self.frontend, 1)
        try:
            ft.wait_until(lambda: workers(self.frontend) == 1, 60, "the planner to drain back to one worker")
        finally:
            answered = light.stop()
        self.assertEqual(set(answered), {200}, answered)
        self.assertGreaterEqual(peak, 3)
        self.assertRegex(self.planner.log, r"plan: agg [3-4] ")
        self.assertRegex(self.planner.log, r"plan: agg [3-4] [\s\S]*plan: agg 1 ")

    def test_2_sigterm_stops_the_planner_and_its_workers(self):
        self.assertEqual(self.planner.stop(signal.SIGTERM), 0, self.planner.log)
        self.assertIn("received SIGTERM, stopping", self.planner.log)
        ft.wait_until(lambda: workers(self.frontend) == 0, 30, "the workers to leave")

    def test_3_the_etcd_connector_writes_the_plan(self):
        p = ft.Process(["planner", "--frontend", self.frontend.url, "--model", "tiny-planned", "--ttft-ms", "500",
                        "--itl-ms", "50", "--min-workers", "2", "--adjustment-interval", "0.5",
                        "--connector", "etcd", "--etcd", self.etcd.url, "--namespace", "fleet-test"],
                       r"planning agg workers")
        self.procs.append(p)
        key = b"turbine/fleet-test/planner/tiny-planned"
        body = json.dumps({"key": base64.b64encode(key).decode()}).encode()

        def plan():
            with urllib.request.urlopen(urllib.request.Request(self.etcd.url + "/v3/kv/range", data=body),
                                        timeout=5) as r:
                kvs = json.loads(r.read()).get("kvs", [])
            return json.loads(base64.b64decode(kvs[0]["value"])) if kvs else None

        got = ft.wait_until(plan, 10, "the plan in etcd")
        self.assertEqual(got["agg"], 2)  # the minimum: no load
        self.assertEqual(got["prefill"], 0)
        self.assertGreater(got["ts_ms"], 0)
        self.assertEqual(p.stop(signal.SIGTERM), 0, p.log)


DISAGG = "tiny-disagg-planned"


class DisaggPlannerTest(PlannedFleet):
    """`turbine planner --mode disagg --connector local` running mock prefill and decode workers."""
    NAME, FRONTEND = DISAGG, ("--max-local-prefill-tokens", "16")

    @staticmethod
    def mode_flags(worker):
        return ["--mode", "disagg", "--max-workers", "6", "--prefill-command", worker + " --role prefill",
                "--decode-command", worker + " --role decode"]

    def pools(self):
        """(prefill workers, decode workers) the frontend routes to."""
        return (ft.metric(self.frontend, "turbine_fleet_prefill_workers", model=DISAGG),
                workers(self.frontend, DISAGG))

    def test_1_the_pools_follow_the_load_and_long_prompts_go_remote(self):
        ft.wait_until(lambda: self.pools() == (1, 1), 30,
                      "the planner's first prefill and decode workers")
        self.assertIn("started with prefill 1 decode 1", self.planner.log)
        load = Load(self.frontend, 24, DISAGG)
        try:
            ft.wait_until(lambda: sum(self.pools()) >= 4, 60, "the planner to add workers under load")
            peak = self.pools()
        finally:
            answered = load.stop()
        self.assertEqual(set(answered), {200}, answered)
        remote = ft.metric(self.frontend, "turbine_disagg_remote_prefills_total", model=DISAGG)
        self.assertGreater(remote, sum(answered.values()) / 2)  # the prompts are longer than 16 tokens
        self.assertEqual(ft.metric(self.frontend, "turbine_disagg_prefill_fallbacks_total", model=DISAGG), 0)
        # Every prompt is new, so cached tokens can only be the prefill workers' blocks, imported.
        self.assertGreater(load.cached, sum(answered.values()) / 2)
        light = Load(self.frontend, 1, DISAGG)
        try:
            ft.wait_until(lambda: self.pools() == (1, 1), 60,
                          "the planner to drain back to one worker of each role")
        finally:
            answered = light.stop()
        self.assertEqual(set(answered), {200}, answered)
        self.assertGreaterEqual(sum(peak), 4)
        print(f"peak (prefill, decode) workers: {peak}; remote prefills {remote}", file=sys.stderr)
        self.assertRegex(self.planner.log, r"plan: prefill \d+ decode \d+ [\s\S]*plan: prefill 1 decode 1 ")


if __name__ == "__main__":
    ft.BIN, ft.MODEL = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
