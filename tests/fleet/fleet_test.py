#!/usr/bin/python3
"""Fleet mode as separate processes on loopback (issue 5 §5): a real etcd, three `turbine worker`
processes (the tiny real model) and `turbine frontend` processes routing to them.

  - a model appears in /v1/models when its first worker registers;
  - a second request sharing a long prefix reports cached_tokens > 0 and went to the same worker;
  - a frontend that loses KV event messages repairs the gaps by replay, and its index converges to
    the index of a frontend that lost none;
  - approximate mode (--no-kv-events) routes a repeated prefix to the same worker without events;
  - a `--engine mock` worker serves its own model name next to the real ones;
  - a worker killed with SIGKILL leaves routing within the lease TTL, and requests still succeed;
  - a request whose worker dies mid-stream migrates; a worker sent SIGTERM drains and exits 0.

usage: fleet_test.py TURBINE_BINARY TINY_MODEL_DIR
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

BIN = None
MODEL = None
LEASE_TTL_S = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """A real etcd (Debian etcd-server) on free loopback ports, in a temporary data directory."""

    def __init__(self):
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.access(binary, os.X_OK):
            raise unittest.SkipTest("no etcd binary (install Debian's etcd-server)")
        self.dir = tempfile.mkdtemp(prefix="turbine-fleet-etcd-")
        client, peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.proc = subprocess.Popen(
            [binary, "--name", "t", "--data-dir", self.dir + "/data", "--listen-client-urls", self.url,
             "--advertise-client-urls", self.url, "--listen-peer-urls", peer_url,
             "--initial-advertise-peer-urls", peer_url, "--initial-cluster", "t=" + peer_url,
             "--log-outputs", self.dir + "/etcd.log", "--logger", "zap"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not become healthy within 10 s")

    def worker_keys(self):
        """The worker ids registered under the test's namespace (etcd's JSON gateway, a range read)."""
        prefix = b"turbine/fleet-test/workers/"
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps({"key": base64.b64encode(prefix).decode(),
                           "range_end": base64.b64encode(end).decode(), "keys_only": True}).encode()
        with urllib.request.urlopen(urllib.request.Request(self.url + "/v3/kv/range", data=body), timeout=5) as r:
            kvs = json.loads(r.read()).get("kvs", [])
        return [base64.b64decode(kv["key"])[len(prefix):].decode() for kv in kvs]

    def stop(self):
        self.proc.kill()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Process:
    """A turbine subcommand; its stderr is collected, `ready` is the log line that says it is up."""

    def __init__(self, args, ready):
        self.proc = subprocess.Popen([BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log = ""
        self.match = None
        up = threading.Event()

        def pump():
            for raw in self.proc.stderr:
                self.log += raw.decode("utf-8", "replace")
                if not up.is_set():
                    self.match = re.search(ready, self.log)
                    if self.match:
                        up.set()
            up.set()

        threading.Thread(target=pump, daemon=True).start()
        if not up.wait(120) or self.match is None:
            self.proc.kill()
            raise RuntimeError(f"turbine {args[0]} did not start:\n{self.log}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(60)


def start_worker(etcd, *extra):
    if "--served-model-name" not in extra:
        extra = ("--served-model-name", "tiny", *extra)
    w = Process(["worker", "--model", MODEL, "--etcd", etcd.url, "--namespace", "fleet-test", "--threads", "1",
                 "--max-model-len", "1024", "--kv-cache-memory", "8MiB", "--lease-ttl", str(LEASE_TTL_S), *extra],
                r"worker (\d+) \(")
    w.id = int(w.match.group(1))
    return w


def start_frontend(etcd, *extra):
    f = Process(["frontend", "--etcd", etcd.url, "--namespace", "fleet-test", "--port", "0", *extra],
                r"listening on (http://[\d.]+:\d+)")
    f.url = f.match.group(1)
    return f


def http(url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if "json" in r.headers.get("Content-Type", "") else raw.decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metrics(frontend):
    """{(name, frozenset(labels)): value} of the frontend's /metrics."""
    _, text = http(frontend.url + "/metrics")
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(frontend, name, **labels):
    return metrics(frontend).get((name, frozenset(labels.items())), 0.0)


def routed_per_worker(frontend, model="tiny"):
    return {dict(k[1])["worker"]: v for k, v in metrics(frontend).items()
            if k[0] == "turbine_router_requests_total" and dict(k[1]).get("model") == model}


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    logs = "".join(f"\n--- turbine {' '.join(p.proc.args[1:3])}:\n{p.log[-3000:]}" for p in FleetCase.procs)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{logs}")


def complete(frontend, prompt, max_tokens=4, model="tiny"):
    status, body = http(frontend.url + "/v1/completions",
                        {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    assert status == 200, body
    return body


def cached(body):
    return (body["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0)


def long_prompt(tag, words=120):
    return f"{tag}: " + " ".join(f"w{(i * 7919 + len(tag)) % 1000}" for i in range(words))


def stream_and_hit_its_worker(frontend, workers, tag, max_tokens, hit, after_events=5):
    """Streams a completion; after `after_events` SSE events calls hit(worker) on the worker that
    serves it (found from the routed-per-worker metric). Returns (events, that worker)."""
    before = routed_per_worker(frontend)
    body = json.dumps({"model": "tiny", "prompt": long_prompt(tag), "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
    req = urllib.request.Request(frontend.url + "/v1/completions", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    events, target = [], None
    with urllib.request.urlopen(req, timeout=120) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if target is None and len(events) == after_events:
                after = routed_per_worker(frontend)
                wid = next(w for w in after if after[w] != before.get(w, 0))
                target = next(w for w in workers if str(w.id) == wid)
                hit(target)
    return events, target


class FleetCase(unittest.TestCase):
    procs = []
    STOP_SIGNAL = signal.SIGKILL  # what the processes get at the end

    """A real etcd and the turbine processes a test class starts (start_fleet) into cls.procs,
    whose logs wait_until shows on a timeout; all killed, then cleanup(), then etcd stopped, when
    the class ends or its set-up fails."""

    @classmethod
    def setUpClass(cls):
        cls.etcd = Etcd()
        cls.procs = []
        FleetCase.procs = cls.procs
        try:
            cls.start_fleet()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_fleet(cls):
        pass

    @classmethod
    def cleanup(cls):
        """After the processes are killed, before etcd stops."""

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.stop(cls.STOP_SIGNAL)
        cls.cleanup()
        cls.etcd.stop()


class FleetTest(FleetCase):
    @classmethod
    def start_fleet(cls):
        # The frontend comes first: the model must appear when its first worker registers.
        cls.frontend = start_frontend(cls.etcd, "--router", "kv", "--seed", "1")
        cls.procs.append(cls.frontend)
        status, body = http(cls.frontend.url + "/v1/models")
        cls.models_before = body["data"]
        cls.workers = [start_worker(cls.etcd) for _ in range(3)]
        cls.procs += cls.workers
        wait_until(lambda: metric(cls.frontend, "turbine_fleet_workers", model="tiny") == 3, 30,
                   "the frontend to see 3 workers")

    def test_1_model_appears_with_its_first_worker(self):
        self.assertEqual(self.models_before, [])
        status, body = http(self.frontend.url + "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in body["data"]], ["tiny"])

    def test_2_shared_prefix_goes_to_the_worker_that_holds_it(self):
        before = routed_per_worker(self.frontend)
        first = complete(self.frontend, long_prompt("alpha") + " first question")
        self.assertEqual(cached(first), 0)
        second = complete(self.frontend, long_prompt("alpha") + " another question")
        self.assertGreater(cached(second), 0, second)
        after = routed_per_worker(self.frontend)
        grew = {w: after[w] - before.get(w, 0) for w in after if after[w] != before.get(w, 0)}
        self.assertEqual(list(grew.values()), [2], f"both requests on one worker: {grew}")
        # The router's accuracy metrics saw the usage of both.
        self.assertGreaterEqual(metric(self.frontend, "turbine_router_usage_reports_total", model="tiny"), 2)
        self.assertGreater(metric(self.frontend, "turbine_router_actual_cached_tokens_total", model="tiny"), 0)
        self.assertGreaterEqual(metric(self.frontend, "turbine_router_decision_seconds_count", model="tiny"), 2)
        self.assertGreater(metric(self.frontend, "turbine_prefix_cache_hit_rate"), 0)
        self.assertGreater(metric(self.frontend, "turbine_router_decision_seconds", model="tiny", quantile="0.99"), 0)

    def test_2b_structured_output_is_enforced_by_the_worker(self):
        # The constraint crosses gRPC; the worker's engine masks the tokens with its vocabulary.
        status, body = http(self.frontend.url + "/v1/completions",
                            {"model": "tiny", "prompt": "pick", "max_tokens": 20, "temperature": 1, "seed": 5,
                             "n": 3, "guided_choice": ["red", "green", "blue"]})
        self.assertEqual(status, 200, body)
        self.assertTrue(all(c["text"] in ("red", "green", "blue") for c in body["choices"]), body)
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        status, body = http(self.frontend.url + "/v1/chat/completions",
                            {"model": "tiny", "messages": [{"role": "user", "content": "ok?"}], "temperature": 0,
                             "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
        self.assertEqual(status, 200, body)
        self.assertIsInstance(json.loads(body["choices"][0]["message"]["content"])["ok"], bool, body)
        status, body = http(self.frontend.url + "/v1/completions",
                            {"model": "tiny", "prompt": "x", "n": 3, "temperature": 1, "seed": 4,
                             "guided_json": {"type": "integer", "minimum": -2, "maximum": 3}})
        self.assertEqual(status, 200, body)
        self.assertTrue(all(-2 <= json.loads(c["text"]) <= 3 for c in body["choices"]), body)
        # A grammar (GBNF) travels as its text; the worker compiles it.
        status, body = http(self.frontend.url + "/v1/completions",
                            {"model": "tiny", "prompt": "x", "n": 3, "temperature": 1, "seed": 6, "max_tokens": 40,
                             "guided_grammar": 'root ::= "(" root ")" | [a-c]{1,3}'})
        self.assertEqual(status, 200, body)
        for c in body["choices"]:
            depth = len(c["text"]) - len(c["text"].lstrip("("))
            self.assertRegex(c["text"], r"^\(*[a-c]{1,3}\)*$", body)
            self.assertTrue(c["text"].endswith(")" * depth) and c["finish_reason"] == "stop", body)
        status, body = http(self.frontend.url + "/v1/completions",
                            {"model": "tiny", "prompt": "x", "guided_grammar": "root ::= nothing"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["param"], "guided_grammar")
        status, body = http(self.frontend.url + "/v1/completions",
                            {"model": "tiny", "prompt": "x", "guided_json": {"type": "number", "maximum": 3}})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["param"], "guided_json")

    def test_3_dropped_event_messages_are_replayed_and_the_index_converges(self):
        lossy = start_frontend(self.etcd, "--router", "kv", "--drop-kv-events-for-test",
                               *[str(s) for s in range(1, 200, 3)])
        self.procs.append(lossy)
        wait_until(lambda: metric(lossy, "turbine_fleet_workers", model="tiny") == 3, 30, "3 workers")
        for i in range(6):  # new blocks on the workers: KV event messages that the lossy frontend loses
            complete(self.frontend, long_prompt(f"beta{i}", 60 + 10 * i))
        wait_until(lambda: metric(lossy, "turbine_event_plane_replays_total") +
                   metric(lossy, "turbine_event_plane_snapshots_total") > 3, 20, "replays")
        self.assertGreater(metric(lossy, "turbine_event_plane_gaps_total"), 0)

        history = []

        def same_index():  # the reference index has settled (same for 1 s), and the lossy one equals it
            a = metric(self.frontend, "turbine_router_index_entries", model="tiny")
            b = metric(lossy, "turbine_router_index_entries", model="tiny")
            history.append(a)
            settled = len(history) >= 10 and len(set(history[-10:])) == 1
            return a > 0 and settled and a == b
        wait_until(same_index, 20, "the lossy frontend's index to equal the other's")
        # And it routes by it: a prefix stored while it was losing events is found.
        again = complete(lossy, long_prompt("beta5", 110) + " and more")
        self.assertGreater(cached(again), 0, again)

    def test_4_approximate_mode_routes_a_repeated_prefix_to_the_same_worker(self):
        approx = start_frontend(self.etcd, "--router", "kv", "--no-kv-events", "--seed", "2")
        self.procs.append(approx)
        wait_until(lambda: metric(approx, "turbine_fleet_workers", model="tiny") == 3, 30, "3 workers")
        for i in range(4):
            complete(approx, long_prompt(f"gamma{i}") + " one")
            again = complete(approx, long_prompt(f"gamma{i}") + " two")
            self.assertGreater(cached(again), 0, f"prefix {i}: {again}")
        self.assertEqual(metric(approx, "turbine_router_kv_events_applied_total", model="tiny"), 0)

    def test_5_mock_engine_worker_serves_next_to_real_ones(self):
        mock = start_worker(self.etcd, "--engine", "mock", "--served-model-name", "tiny-mock",
                            "--mock-speedup", "50", "--num-kv-blocks", "256")
        self.procs.append(mock)
        wait_until(lambda: "tiny-mock" in [m["id"] for m in http(self.frontend.url + "/v1/models")[1]["data"]],
                   30, "tiny-mock in /v1/models")
        body = complete(self.frontend, long_prompt("delta"), max_tokens=5, model="tiny-mock")
        self.assertEqual(body["usage"]["completion_tokens"], 5)
        again = complete(self.frontend, long_prompt("delta") + " more", max_tokens=5, model="tiny-mock")
        self.assertGreater(cached(again), 0, again)
        mock.stop(signal.SIGTERM)
        wait_until(lambda: "tiny-mock" not in [m["id"] for m in http(self.frontend.url + "/v1/models")[1]["data"]],
                   10, "tiny-mock to leave /v1/models after a clean stop")

    def test_6_sigkill_removes_the_worker_within_the_lease_ttl(self):
        # Put a prefix on one worker, then kill exactly that worker.
        before = routed_per_worker(self.frontend)
        complete(self.frontend, long_prompt("epsilon"))
        after = routed_per_worker(self.frontend)
        victim_id = next(w for w in after if after[w] != before.get(w, 0))
        victim = next(w for w in self.workers if str(w.id) == victim_id)
        killed_at = time.time()
        victim.proc.kill()
        victim.proc.wait(10)
        # Requests right after the kill still succeed (a refused worker is dropped, the request re-routed)...
        body = complete(self.frontend, long_prompt("epsilon") + " after the kill")
        self.assertEqual(body["usage"]["completion_tokens"], 4)
        # ...and the lease expiry removes the worker from every frontend.
        wait_until(lambda: metric(self.frontend, "turbine_fleet_workers", model="tiny") == 2,
                   LEASE_TTL_S + 5, "the killed worker to leave")
        # Its record is gone from etcd (the lease expired), and discovery told the frontend so.
        wait_until(lambda: str(victim.id) not in self.etcd.worker_keys(), LEASE_TTL_S + 5,
                   "etcd to drop the killed worker's record")
        wait_until(lambda: f"worker {victim.id} left" in self.frontend.log, 5, "the frontend to see it leave")
        self.assertLess(time.time() - killed_at, LEASE_TTL_S + 5)
        self.assertEqual(len(self.etcd.worker_keys()), 2)
        mid = routed_per_worker(self.frontend)
        for i in range(4):
            body = complete(self.frontend, long_prompt(f"zeta{i}"))
            self.assertEqual(body["usage"]["completion_tokens"], 4)
        end = routed_per_worker(self.frontend)
        self.assertEqual(end.get(victim_id, 0), mid.get(victim_id, 0), "no request may go to the dead worker")
        self.assertEqual(sum(end.values()) - sum(mid.values()), 4)

    def test_7_a_request_whose_worker_dies_mid_stream_migrates(self):
        alive = [w for w in self.workers if w.proc.poll() is None]
        self.assertGreaterEqual(len(alive), 2, "needs two live workers")
        events, killed = stream_and_hit_its_worker(self.frontend, alive, "eta", 400, lambda w: w.proc.kill())
        self.assertIsNotNone(killed)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertNotIn("error", chunks[-1])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 400, chunks[-1])
        self.assertEqual([c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1], "length")
        self.assertGreaterEqual(metric(self.frontend, "turbine_request_migrations_total", model="tiny"), 1)

    def test_8_sigterm_drains_the_worker_and_its_streams_complete(self):
        spare = start_worker(self.etcd)  # so that a second worker is left after the drain
        self.procs.append(spare)
        self.workers.append(spare)
        alive = [w for w in self.workers if w.proc.poll() is None]
        wait_until(lambda: metric(self.frontend, "turbine_fleet_workers", model="tiny") == len(alive), 30,
                   "the spare worker to join")
        events, stopped = stream_and_hit_its_worker(self.frontend, alive, "theta", 300,
                                                    lambda w: w.proc.send_signal(signal.SIGTERM))
        self.assertIsNotNone(stopped)
        self.assertEqual(events[-1], "[DONE]")
        last = json.loads(events[-2])
        self.assertEqual(last["usage"]["completion_tokens"], 300, last)
        self.assertEqual(stopped.proc.wait(30), 0, stopped.log)
        self.assertIn("draining", stopped.log)
        # Deregistered at once: gone from etcd without waiting for the lease.
        wait_until(lambda: str(stopped.id) not in self.etcd.worker_keys(), 5, "the drained worker's record to go")


if __name__ == "__main__":
    BIN, MODEL = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
