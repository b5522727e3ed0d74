#!/usr/bin/python3
"""vLLM engines behind a Turbine frontend (issue 5 §3: "a fleet of vLLM or SGLang workers can sit
behind it"): a real etcd, two stand-in vLLM servers (vllm_server.py: vLLM's OpenAI API with
return_token_ids, its KV events from vllm_publisher.py), one `turbine worker --engine upstream`
per server, and `turbine frontend --router kv`, all separate processes on loopback.

  - a completion through the frontend carries the upstream's tokens and usage, streamed or not,
    and the upstream received the request's token ids and options;
  - blocks that a vLLM engine announces by its KV events draw requests for them to its worker;
  - a client that disconnects mid-stream aborts the request on the vLLM engine;
  - each worker relays its engine's KV events on its own endpoint: a frontend that joins after
    the engine's replay buffer lost them still knows the engine's blocks (the worker's snapshot);
  - each worker reports the load of what it has in flight (DESIGN.md §3.3), so a second frontend
    routes away from an engine that the first one keeps busy;
  - SGLang engines (`--upstream-api sglang`, its native /generate; both ways it streams output_ids)
    behind a model, routed by their relayed KV events; an engine-side abort is an error;
  - upstream failures (an unknown model, an engine that is down, one without return_token_ids)
    come back as OpenAI error objects; with a second engine behind the model, requests routed to
    a dead one move to the other and succeed; bad `turbine worker` arguments are one-line errors.

usage: upstream_test.py TURBINE_BINARY TINY_MODEL_DIR
"""
import concurrent.futures
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleet_test as ft  # noqa: E402  (Etcd, Process, http, metrics)

NS = "upstream-test"
BLOCK = 16


class StandIn:
    """A vllm_server.py process."""

    def __init__(self, model, *extra):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "vllm_server.py"), "--model", model,
                                      "--vocab", "4000", "--eos", "4095", "--block-size", str(BLOCK), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self.proc.kill()
            raise RuntimeError("vllm_server.py did not start")
        self.url, pub, replay = ready[1], ready[2], ready[3]
        self.events = f"{pub};replay={replay};format=vllm"

    def stats(self):
        return ft.http(self.url + "/stats")[1]

    def cache(self, tokens):
        return ft.http(self.url + "/test/cache", {"tokens": tokens})[1]

    def forget(self):
        """The publisher's replay buffer emptied, as by an overflow."""
        return ft.http(self.url + "/test/forget", {})[1]

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


def start_upstream_worker(etcd, upstream_url, *extra, served="tiny"):
    w = ft.Process(["worker", "--engine", "upstream", "--model", ft.MODEL, "--served-model-name", served,
                    "--upstream", upstream_url, "--upstream-model", "vllm-tiny", "--max-model-len", "1024",
                    "--block-size", str(BLOCK), "--etcd", etcd.url, "--namespace", NS, "--lease-ttl", "2", *extra],
                   r"worker (\d+) \(upstream")
    w.id = int(w.match.group(1))
    return w


def start_frontend(etcd, *extra):
    f = ft.Process(["frontend", "--etcd", etcd.url, "--namespace", NS, "--port", "0", "--router", "kv", "--seed", "1",
                    *extra], r"listening on (http://[\d.]+:\d+)")
    f.url = f.match.group(1)
    return f


def event_endpoint(worker):
    """The worker's own event publisher (its record's event_endpoint), from its log."""
    return re.search(r"events on (tcp://[\d.:]+)", worker.log).group(1)


def routed(frontend, model="tiny"):
    return {dict(k[1])["worker"]: v for k, v in ft.metrics(frontend).items()
            if k[0] == "turbine_router_requests_total" and dict(k[1]).get("model") == model}


def wait_for(predicate, timeout, what):
    """fleet_test's wait_until: on a timeout it shows the logs of this test's processes."""
    return ft.wait_until(predicate, timeout, what)


def ids(n, last, seed):
    """n prompt token ids (all below 4000) ending with `last`."""
    return [(seed * 7919 + i * 104729) % 3000 + 500 for i in range(n - 1)] + [last]


class UpstreamTest(ft.FleetCase):
    STOP_SIGNAL = signal.SIGTERM

    @classmethod
    def start_fleet(cls):
        cls.vllm = [StandIn("vllm-tiny"), StandIn("vllm-tiny")]
        cls.frontend = start_frontend(cls.etcd)
        cls.procs.append(cls.frontend)
        cls.workers = [start_upstream_worker(cls.etcd, v.url, "--kv-events", v.events) for v in cls.vllm]
        cls.procs += cls.workers
        wait_for(lambda: ft.metric(cls.frontend, "turbine_fleet_workers", model="tiny") == 2, 30,
                 "the frontend to see both workers")

    @classmethod
    def cleanup(cls):
        for v in getattr(cls, "vllm", []):
            v.stop()

    @contextlib.contextmanager
    def serving(self, served, *engines, extra=()):
        """Upstream workers for `engines` (StandIn, whose KV events the worker relays, or URL),
        serving model `served`, registered with the frontend for the block; stopped after it (with
        the stand-ins)."""
        ws = [start_upstream_worker(self.etcd, e, *extra, served=served) if isinstance(e, str) else
              start_upstream_worker(self.etcd, e.url, "--kv-events", e.events, *extra, served=served)
              for e in engines]
        self.procs += ws
        try:
            wait_for(lambda: ft.metric(self.frontend, "turbine_fleet_workers", model=served) == len(ws), 30,
                     f"the frontend to see model {served}")
            yield ws
        finally:
            for w in ws:
                w.stop()
            for e in engines:
                if not isinstance(e, str):
                    e.stop()

    def completion(self, model, prompt, **fields):
        return ft.http(self.frontend.url + "/v1/completions", {"model": model, "prompt": prompt, **fields}, timeout=30)

    def complete(self, prompt, **fields):
        return ft.http(self.frontend.url + "/v1/completions",
                       {"model": "tiny", "prompt": prompt, "temperature": 0, **fields})

    def detokenize(self, tokens):
        status, body = ft.http(self.frontend.url + "/detokenize", {"model": "tiny", "tokens": tokens})
        self.assertEqual(status, 200, body)
        return body["prompt"]

    def test_1_tokens_and_usage_come_from_the_upstream(self):
        prompt = ids(40, 1000, 1)
        status, body = self.complete(prompt, max_tokens=5, seed=7, top_k=3, stop_token_ids=[3999])
        self.assertEqual(status, 200, body)
        self.assertEqual(body["choices"][0]["text"], self.detokenize([1001, 1002, 1003, 1004, 1005]))
        self.assertEqual(body["choices"][0]["finish_reason"], "length")
        self.assertEqual(body["usage"]["prompt_tokens"], 40)
        self.assertEqual(body["usage"]["completion_tokens"], 5)
        sent = [v.stats()["last_body"] for v in self.vllm if v.stats()["last_body"]]
        sent = next(b for b in sent if b["prompt"] == prompt)
        self.assertEqual(sent["model"], "vllm-tiny")
        self.assertTrue(sent["stream"] and sent["return_token_ids"] and sent["stream_options"]["include_usage"])
        self.assertEqual((sent["max_tokens"], sent["seed"], sent["top_k"]), (5, 7, 3))
        self.assertIn(3999, sent["stop_token_ids"])

        # A stop token: the upstream stops on it; streamed through the frontend as SSE.
        req = urllib.request.Request(self.frontend.url + "/v1/completions", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"model": "tiny", "prompt": ids(20, 2000, 2), "max_tokens": 50,
                                                      "stop_token_ids": [2003], "stream": True,
                                                      "stream_options": {"include_usage": True}}).encode())
        with urllib.request.urlopen(req, timeout=60) as r:
            events = [line.decode()[6:].strip() for line in r if line.startswith(b"data: ")]
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual([c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1], "stop")
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 3)  # 2001, 2002 and the stop token 2003

    def test_2_kv_events_draw_requests_to_the_engine_holding_the_blocks(self):
        by_url = {v.url: v for v in self.vllm}
        worker_of = {str(w.id): by_url[re.search(r"upstream engine (\S+),", w.log).group(1)] for w in self.workers}
        for round_ in range(3):
            for k, engine in enumerate(self.vllm):
                # Only this engine's KV events say it holds the prompt's first 4 blocks.
                prompt = ids(4 * BLOCK + 5, 3000 + round_, 10 + 2 * round_ + k)
                engine.cache(prompt[:4 * BLOCK])
                time.sleep(0.3)  # the events reach the frontend's index
                before = routed(self.frontend)
                status, body = self.complete(prompt, max_tokens=2)
                self.assertEqual(status, 200, body)
                after = routed(self.frontend)
                went = next(w for w in after if after[w] != before.get(w, 0))
                self.assertIs(worker_of[went], engine, f"round {round_}: routed away from the engine holding it")
                self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 4 * BLOCK, body)

    def test_3_a_client_that_goes_away_aborts_the_upstream_request(self):
        # (the worker asks for model vllm-tiny; this stand-in serves vllm-slow: an OpenAI 404)
        with self.serving("slow", StandIn("vllm-slow")):
            status, body = self.completion("slow", ids(8, 100, 3), max_tokens=4)
            self.assertGreaterEqual(status, 400, body)
            self.assertIn("does not exist", body["error"]["message"])

        slow = StandIn("vllm-tiny", "--token-delay", "0.02")
        with self.serving("slow", slow):
            sock = socket.create_connection(("127.0.0.1", int(self.frontend.url.rsplit(":", 1)[1])))
            body = json.dumps({"model": "slow", "prompt": ids(8, 200, 4), "max_tokens": 500, "stream": True})
            sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            got = b""
            while got.count(b"data: ") < 5:
                got += sock.recv(4096)
            sock.close()
            wait_for(lambda: slow.stats()["aborted"] == 1, 10, "the upstream to see the request aborted")
            self.assertEqual(slow.stats()["finished"], 0)

    def test_4_engine_failures(self):
        # The only engine of a model down (connection refused): an error naming the upstream.
        old = StandIn("vllm-tiny")
        with self.serving("old", old):
            old.stop()
            status, body = self.completion("old", ids(8, 300, 5), max_tokens=4)
            self.assertGreaterEqual(status, 500, body)
            self.assertIn("upstream", body["error"]["message"])

        # Two engines behind one model, one of them down: every request still succeeds (those
        # routed to the dead one move to the other worker, which is then the only one routed to).
        pair = [StandIn("vllm-tiny"), StandIn("vllm-tiny")]
        with self.serving("pair", *pair):
            pair[0].stop()
            before = ft.metric(self.frontend, "turbine_request_migrations_total", model="pair")
            for i in range(6):
                status, body = self.completion("pair", ids(20, 500 + i, 20 + i), max_tokens=3)
                self.assertEqual(status, 200, body)
                self.assertEqual(body["choices"][0]["text"], self.detokenize([501 + i, 502 + i, 503 + i]))
            self.assertEqual(pair[1].stats()["finished"], 6)
            self.assertGreaterEqual(ft.metric(self.frontend, "turbine_request_migrations_total", model="pair"),
                                    before + 1)

        # An engine that ignores return_token_ids (text only, as vLLM before 0.10.2): a clear
        # error, not garbage.
        class TextOnly(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"choices": [{"index": 0, "text": "hi", "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")

            def do_GET(self):
                self.send_response(200)
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), TextOnly)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with self.serving("textonly", f"http://127.0.0.1:{server.server_address[1]}"):
                status, body = self.completion("textonly", ids(8, 400, 6), max_tokens=4)
                self.assertGreaterEqual(status, 500, body)
                self.assertIn("return_token_ids", body["error"]["message"])
        finally:
            server.shutdown()

    def test_5_many_streams_at_once(self):
        # 48 concurrent requests over the two engines (each worker runs them on one I/O thread),
        # every one with its own tokens.
        def one(i):
            return i, self.complete(ids(24, 600 + 3 * i, 40 + i), max_tokens=6)
        with concurrent.futures.ThreadPoolExecutor(48) as pool:
            results = list(pool.map(one, range(48)))
        for i, (status, body) in results:
            self.assertEqual(status, 200, body)
            self.assertEqual(body["usage"]["completion_tokens"], 6)
            want = self.detokenize([601 + 3 * i + k for k in range(6)])
            self.assertEqual(body["choices"][0]["text"], want, i)

    def test_6_a_frontend_that_joins_late_knows_the_engines_blocks(self):
        # The engine announces a prompt's blocks, then its replay buffer loses them (vLLM keeps no
        # snapshot): a frontend starting now learns them from the worker's relay snapshot.
        by_url = {v.url: v for v in self.vllm}
        worker_of = {str(w.id): by_url[re.search(r"upstream engine (\S+),", w.log).group(1)] for w in self.workers}
        prompts = [ids(6 * BLOCK + 3, 3500 + k, 70 + k) for k in range(len(self.vllm))]
        for engine, prompt in zip(self.vllm, prompts):
            engine.cache(prompt[:6 * BLOCK])
            engine.forget()
        time.sleep(0.3)
        late = start_frontend(self.etcd)
        self.procs.append(late)
        try:
            wait_for(lambda: ft.metric(late, "turbine_fleet_workers", model="tiny") == 2, 30, "the late frontend's workers")
            wait_for(lambda: ft.metric(late, "turbine_router_index_blocks", model="tiny") >= 12, 10,
                     "the late frontend's index to hold both engines' blocks")
            for engine, prompt in zip(self.vllm, prompts):
                before = routed(late)
                status, body = ft.http(late.url + "/v1/completions",
                                       {"model": "tiny", "prompt": prompt, "max_tokens": 2, "temperature": 0})
                self.assertEqual(status, 200, body)
                after = routed(late)
                went = next(w for w in after if after[w] != before.get(w, 0))
                self.assertIs(worker_of[went], engine, "routed away from the engine holding the prompt")
                self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 6 * BLOCK, body)
        finally:
            late.stop()
            self.procs.remove(late)

    def test_7_workers_report_the_load_they_have_in_flight(self):
        import msgpack
        import zmq
        # What goes through the worker (--upstream-metrics-ms 0: not the engine's own gauges,
        # test_10's).
        slow = [StandIn("vllm-tiny", "--token-delay", "0.05"), StandIn("vllm-tiny", "--token-delay", "0.05")]
        with self.serving("busy", *slow, extra=("--upstream-metrics-ms", "0")) as ws:
            by_url = {v.url: v for v in slow}
            engine_of = {w.id: by_url[re.search(r"upstream engine (\S+),", w.log).group(1)] for w in ws}
            ctx = zmq.Context()
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"load")
            busy = ws[0]
            sub.connect(event_endpoint(busy))
            time.sleep(0.3)  # the subscription reaches the publisher

            def reports(until, timeout=10):
                end = time.time() + timeout
                while time.time() < end:
                    if sub.poll(200):
                        topic, _, payload = sub.recv_multipart()
                        load = msgpack.unpackb(payload, raw=False)
                        if until(load):
                            return load
                self.fail("no such load report from the worker")

            # Requests that a first frontend sends to one engine (its KV events hold their prefix,
            # which this frontend weighs above any load), streaming slowly: the worker reports
            # them running, with their blocks.
            first = start_frontend(self.etcd, "--overlap-weight", "100")
            self.procs.append(first)
            wait_for(lambda: ft.metric(first, "turbine_fleet_workers", model="busy") == 2, 30,
                     "the first frontend's workers")
            prefix = ids(8 * BLOCK, 3100, 90)
            engine_of[busy.id].cache(prefix)
            time.sleep(0.3)
            streams = []
            for k in range(4):
                req = urllib.request.Request(
                    first.url + "/v1/completions", headers={"Content-Type": "application/json"},
                    data=json.dumps({"model": "busy", "prompt": prefix + [600 + k, 700 + k], "max_tokens": 60,
                                     "stream": True}).encode())
                streams.append(urllib.request.urlopen(req, timeout=60))
                streams[-1].readline()  # the first event: the request runs upstream
            load = reports(lambda m: m["running"] == 4)
            self.assertEqual(load["worker_id"], busy.id)
            # 8 * 16 + 2 prompt tokens and some generated: 9 blocks each, 10 after 14 tokens
            self.assertTrue(4 * 9 <= load["kv_blocks_used"] <= 4 * 10, load)

            # A second frontend, which routed none of them, sends fresh prompts to the other engine
            # (without the reports both engines would look idle to it: a coin toss per request).
            second = start_frontend(self.etcd)
            self.procs.append(second)
            try:
                wait_for(lambda: ft.metric(second, "turbine_fleet_workers", model="busy") == 2, 30,
                         "the second frontend's workers")
                time.sleep(0.3)  # a load report reaches it
                for i in range(6):
                    status, body = ft.http(second.url + "/v1/completions",
                                           {"model": "busy", "prompt": ids(20, 800 + i, 95 + i), "max_tokens": 1})
                    self.assertEqual(status, 200, body)
                got = routed(second, "busy")
                self.assertEqual(got.get(str(ws[1].id), 0), 6, got)
            finally:
                second.stop()
                self.procs.remove(second)
            for s_ in streams:
                s_.close()
            # Once they are gone (aborted by the closed streams), the worker reports itself idle.
            reports(lambda m: m["running"] == 0 and m["kv_blocks_used"] == 0)
            first.stop()
            self.procs.remove(first)
            sub.close()
            ctx.term()

    def test_8_sglang_engines(self):
        # Two stand-in SGLang servers behind one model (`--upstream-api sglang`: its native
        # /generate), one streaming all output_ids so far, the other only the new ones.
        sg = [StandIn("sglang-tiny", "--api", "sglang"), StandIn("sglang-tiny", "--api", "sglang", "--incremental")]
        with self.serving("sg", *sg, extra=("--upstream-api", "sglang")) as ws:
            by_url = {v.url: v for v in sg}
            engine_of = {str(w.id): by_url[re.search(r"upstream engine (\S+),", w.log).group(1)] for w in ws}
            for k, engine in enumerate(sg):
                # Its (relayed) KV events draw the request to it; tokens, finish and usage come back.
                prompt = ids(3 * BLOCK + 4, 2500 + 10 * k, 110 + k)
                engine.cache(prompt[:3 * BLOCK])
                time.sleep(0.3)
                before = routed(self.frontend, "sg")
                status, body = self.completion("sg", prompt, max_tokens=7, seed=5, stop_token_ids=[2505 + 10 * k],
                                               min_tokens=2)
                self.assertEqual(status, 200, body)
                after = routed(self.frontend, "sg")
                went = next(w for w in after if after[w] != before.get(w, 0))
                self.assertIs(engine_of[went], engine, "routed away from the engine holding the prompt")
                want = [2501 + 10 * k + i for i in range(5)]  # ends with the stop token (in the text, as vLLM)
                self.assertEqual(body["choices"][0]["text"], self.detokenize(want), body)
                self.assertEqual(body["choices"][0]["finish_reason"], "stop", body)
                self.assertEqual(body["usage"]["prompt_tokens"], len(prompt))
                self.assertEqual(body["usage"]["completion_tokens"], 5)
                self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 3 * BLOCK, body)
                sent = engine.stats()["last_body"]
                self.assertEqual(sent["input_ids"], prompt)
                self.assertTrue(sent["stream"])
                sp = sent["sampling_params"]
                self.assertEqual((sp["max_new_tokens"], sp["sampling_seed"], sp["min_new_tokens"]), (7, 5, 2))
                self.assertIn(2505 + 10 * k, sp["stop_token_ids"])
                # Streamed, to the length limit: every token once, in order.
                req = urllib.request.Request(self.frontend.url + "/v1/completions",
                                             headers={"Content-Type": "application/json"},
                                             data=json.dumps({"model": "sg", "prompt": prompt, "max_tokens": 9,
                                                              "ignore_eos": True, "stream": True}).encode())
                with urllib.request.urlopen(req, timeout=60) as r:
                    events = [line.decode()[6:].strip() for line in r if line.startswith(b"data: ")]
                text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1] if json.loads(e)["choices"])
                self.assertEqual(text, self.detokenize([2501 + 10 * k + i for i in range(9)]))

            # SGLang has no cache_salt: refused, not silently shared.
            status, body = self.completion("sg", ids(20, 900, 120), max_tokens=2, cache_salt="tenant-a")
            self.assertEqual(status, 400, body)
            self.assertIn("cache_salt", body["error"]["message"])

        # SGLang's default page size, 1 token: its KV events name 1-token blocks, which the worker
        # merges into --block-size blocks, so each engine still draws the prompts it holds.
        p1 = [StandIn("sglang-tiny", "--api", "sglang", "--block-size", "1") for _ in range(2)]
        with self.serving("sgp1", *p1, extra=("--upstream-api", "sglang")) as ws:
            by_url = {v.url: v for v in p1}
            engine_of = {str(w.id): by_url[re.search(r"upstream engine (\S+),", w.log).group(1)] for w in ws}
            for k, engine in enumerate(p1):
                prompt = ids(3 * BLOCK + 5, 2700 + 10 * k, 150 + k)
                engine.cache(prompt[:3 * BLOCK + 3])  # 51 one-token pages: 3 whole blocks
                time.sleep(0.3)
                before = routed(self.frontend, "sgp1")
                status, body = self.completion("sgp1", prompt, max_tokens=2)
                self.assertEqual(status, 200, body)
                after = routed(self.frontend, "sgp1")
                went = next(w for w in after if after[w] != before.get(w, 0))
                self.assertIs(engine_of[went], engine, "routed away from the engine holding the prompt")

        # An engine-side abort (SGLang's finish_reason type "abort") is an error with its message.
        with self.serving("sgabort", StandIn("sglang-tiny", "--api", "sglang", "--abort-over", "30"),
                          extra=("--upstream-api", "sglang")):
            status, body = self.completion("sgabort", ids(40, 900, 121), max_tokens=2)
            self.assertEqual(status, 400, body)
            self.assertIn("prompt too long for the stand-in", body["error"]["message"])
            status, body = self.completion("sgabort", ids(20, 900, 122), max_tokens=2)
            self.assertEqual(status, 200, body)

    def test_9_bad_arguments_are_one_line_errors(self):
        for args, says in [(["--max-model-len", "64"], "--upstream"),
                           (["--upstream", "http://127.0.0.1:9"], "--max-model-len"),
                           (["--upstream", "ftp://x", "--max-model-len", "64"], "http://"),
                           (["--upstream", "http://127.0.0.1:9", "--max-model-len", "64", "--kv-events", "tcp://x;nope=1"],
                            "--kv-events"),
                           (["--upstream", "http://127.0.0.1:9", "--max-model-len", "64", "--upstream-api", "tgi"],
                            "--upstream-api"),
                           (["--upstream", "http://127.0.0.1:9", "--max-model-len", "64", "--upstream-metrics-ms", "-5"],
                            "--upstream-metrics-ms")]:
            r = subprocess.run([ft.BIN, "worker", "--engine", "upstream", "--model", ft.MODEL, "--etcd", self.etcd.url,
                                "--namespace", NS, *args], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertIn(says, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


    def test_10_workers_report_the_engines_queue_from_its_metrics(self):
        import msgpack
        import zmq
        # Engines that run 2 (vLLM) or 1 (SGLang) requests at once and queue the others: the
        # worker reads their /metrics and reports their queue, pool and token rates.
        cases = [("qv", StandIn("vllm-tiny", "--token-delay", "0.05", "--max-running", "2", "--num-gpu-blocks", "500"),
                  (), 2, 5),
                 ("qs", StandIn("sglang-tiny", "--api", "sglang", "--enable-metrics", "--token-delay", "0.05",
                                "--max-running", "1", "--num-gpu-blocks", "500"), ("--upstream-api", "sglang"), 1, 3)]
        for served, engine, extra, running, n in cases:
            with self.serving(served, engine, extra=extra) as ws:
                w = ws[0]
                wait_for(lambda: "reading the engine's load from its /metrics" in w.log, 10,
                         "the worker to read the engine's metrics")
                ctx = zmq.Context()
                sub = ctx.socket(zmq.SUB)
                sub.setsockopt(zmq.SUBSCRIBE, b"load")
                sub.connect(event_endpoint(w))
                time.sleep(0.3)

                def reports(until, timeout=15):
                    end, last = time.time() + timeout, None
                    while time.time() < end:
                        if sub.poll(200):
                            last = msgpack.unpackb(sub.recv_multipart()[2], raw=False)
                            if until(last):
                                return last
                    self.fail(f"no such load report from the worker (last: {last})")

                bodies = []

                def one(k):
                    req = urllib.request.Request(
                        self.frontend.url + "/v1/completions", headers={"Content-Type": "application/json"},
                        data=json.dumps({"model": served, "prompt": ids(2 * BLOCK, 600 + k, 130 + k), "max_tokens": 40,
                                         "ignore_eos": True}).encode())
                    with urllib.request.urlopen(req, timeout=60) as r:
                        bodies.append(json.loads(r.read()))

                threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
                for t in threads:
                    t.start()
                # The engine's queue as it reports it (this worker alone would say n running, 0
                # waiting); its pool of 500 blocks, `running` prompts of 2 blocks each in use.
                load = reports(lambda m: m["running"] == running and m["waiting"] == n - running)
                self.assertEqual(load["worker_id"], w.id)
                self.assertEqual(load["kv_blocks_total"], 500, load)
                self.assertEqual(load["kv_blocks_used"], 2 * running, load)
                reports(lambda m: m["tokens_per_s_decode"] > 0)
                for t in threads:
                    t.join(120)
                self.assertEqual(len(bodies), n)
                self.assertTrue(all(b["usage"]["completion_tokens"] == 40 for b in bodies), bodies)
                reports(lambda m: m["running"] == 0 and m["waiting"] == 0 and m["kv_blocks_used"] == 0)
                sub.close()
                ctx.term()

        # An SGLang started without --enable-metrics: the worker says what to do, and reports what
        # goes through it.
        with self.serving("qn", StandIn("sglang-tiny", "--api", "sglang"), extra=("--upstream-api", "sglang")) as ws:
            wait_for(lambda: "--enable-metrics" in ws[0].log, 10, "the worker's warning")
            self.assertIn("HTTP 404", ws[0].log)
            status, body = self.completion("qn", ids(20, 900, 140), max_tokens=2)
            self.assertEqual(status, 200, body)


if __name__ == "__main__":
    ft.BIN, ft.MODEL = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
