#!/usr/bin/python3
"""`turbine serve` seen through curl and a raw socket: SSE framing and error bodies byte for byte,
a client that disconnects mid-stream gets its KV blocks freed, SIGTERM exits 0.

usage: curl_test.py TURBINE_BINARY TINY_MODEL_DIR
The server runs with --port 0; its log line "listening on http://HOST:PORT" names the port.
"""
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BIN = None
MODEL = None


class Server:
    """One `turbine serve` process on a free port."""

    def __init__(self, *extra, kv_memory="16MiB"):
        args = [BIN, "serve", "--model", MODEL, "--port", "0", "--threads", "2", "--max-model-len", "2048",
                "--kv-cache-memory", kv_memory, *extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log = ""
        self.port = None
        ready = threading.Event()

        def pump():
            for raw in self.proc.stderr:
                self.log += raw.decode("utf-8", "replace")
                m = re.search(r"listening on http://([\d.]+):(\d+)", self.log)
                if m and not ready.is_set():
                    self.host, self.port = m.group(1), int(m.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(60) or self.port is None:
            self.proc.kill()
            raise RuntimeError("turbine serve did not start:\n" + self.log)
        self.url = f"http://{self.host}:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc.stderr.close()
        return code


def curl(url, body=None, headers=(), method=None):
    """Returns (status, headers text, body bytes) of one request made by curl."""
    with tempfile.NamedTemporaryFile() as hdr, tempfile.NamedTemporaryFile() as out:
        cmd = ["curl", "-sS", "-N", "-D", hdr.name, "-o", out.name, url]
        if method:
            cmd += ["-X", method]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary",
                    body if isinstance(body, str) else json.dumps(body)]
        for h in headers:
            cmd += ["-H", h]
        subprocess.run(cmd, check=True, timeout=120)
        with open(hdr.name, "rb") as f:
            head = f.read().decode("latin-1")
        with open(out.name, "rb") as f:
            body = f.read()
        return int(head.split(" ", 2)[1]), head, body


def js(s):
    """A JSON string exactly as the OpenAI wire format (and Turbine) writes it."""
    return json.dumps(s, ensure_ascii=False)


def metric(url, name):
    _, _, body = curl(url + "/metrics")
    m = re.search(rb"^" + name.encode() + rb" (\S+)$", body, re.M)
    if not m:
        raise AssertionError(f"{name} not in /metrics")
    return float(m.group(1))


class ServeCurlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--workers", "1")
        cls.url = cls.server.url
        status, _, body = curl(cls.url + "/v1/models")
        assert status == 200, body
        cls.model = json.loads(body)["data"][0]["id"]

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        assert code == 0, f"exit code {code} after SIGTERM\n{cls.server.log}"

    def chat_body(self, **extra):
        body = {"model": self.model, "messages": [{"role": "user", "content": "Tell me about SSE."}],
                "max_tokens": 5, "temperature": 0, "ignore_eos": True}
        body.update(extra)
        return body

    def split_events(self, body):
        self.assertTrue(body.endswith(b"data: [DONE]\n\n"), body[-80:])
        events = body.split(b"\n\n")
        self.assertEqual(events[-1], b"")
        for e in events[:-1]:
            self.assertTrue(e.startswith(b"data: "), e)
            self.assertNotIn(b"\n", e)
        return [e[len(b"data: "):].decode("utf-8") for e in events[:-2]]

    def test_chat_stream_framing_byte_for_byte(self):
        _, _, whole = curl(self.url + "/v1/chat/completions", self.chat_body())
        text = json.loads(whole)["choices"][0]["message"]["content"]
        for include_usage in (False, True):
            extra = {"stream": True}
            if include_usage:
                extra["stream_options"] = {"include_usage": True}
            status, head, body = curl(self.url + "/v1/chat/completions", self.chat_body(**extra))
            self.assertEqual(status, 200)
            self.assertRegex(head, r"(?i)\r\ncontent-type: text/event-stream\r\n")
            self.assertRegex(head, r"(?i)\r\ntransfer-encoding: chunked\r\n")
            events = self.split_events(body)
            first = json.loads(events[0])
            ident, created = first["id"], first["created"]
            self.assertRegex(ident, r"^chatcmpl-")
            pieces = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[1:-2 if include_usage else -1]]
            self.assertEqual("".join(pieces), text)
            head_json = (f'{{"id":{js(ident)},"object":"chat.completion.chunk","created":{created},'
                         f'"model":{js(self.model)},"choices":[')
            tail = ',"usage":null}' if include_usage else "}"
            expected = "data: " + head_json + ('{"index":0,"delta":{"role":"assistant","content":""},'
                                               '"logprobs":null,"finish_reason":null}]') + tail + "\n\n"
            for p in pieces:
                expected += ("data: " + head_json + '{"index":0,"delta":{"content":' + js(p) +
                             '},"logprobs":null,"finish_reason":null}]' + tail + "\n\n")
            expected += ("data: " + head_json + '{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]' +
                         tail + "\n\n")
            if include_usage:
                usage = json.loads(events[-1])["usage"]
                self.assertEqual(usage["completion_tokens"], 5)
                expected += ("data: " + head_json + '],"usage":{"prompt_tokens":' + str(usage["prompt_tokens"]) +
                             ',"completion_tokens":5,"total_tokens":' + str(usage["prompt_tokens"] + 5) +
                             ',"prompt_tokens_details":{"cached_tokens":' +
                             str(usage["prompt_tokens_details"]["cached_tokens"]) + "}}}\n\n")
            expected += "data: [DONE]\n\n"
            self.assertEqual(body.decode("utf-8"), expected)

    def test_completion_stream_text_matches(self):
        req = {"model": self.model, "prompt": "Hello", "max_tokens": 6, "temperature": 0, "ignore_eos": True}
        _, _, whole = curl(self.url + "/v1/completions", req)
        text = json.loads(whole)["choices"][0]["text"]
        status, _, body = curl(self.url + "/v1/completions", dict(req, stream=True))
        self.assertEqual(status, 200)
        events = [json.loads(e) for e in self.split_events(body)]
        self.assertEqual("".join(e["choices"][0]["text"] for e in events), text)
        self.assertEqual([e["choices"][0]["finish_reason"] for e in events][-1], "length")
        self.assertTrue(all(e["object"] == "text_completion" for e in events))

    def test_error_bodies_byte_for_byte(self):
        status, head, body = curl(self.url + "/v1/chat/completions", self.chat_body(model="nope"))
        self.assertEqual(status, 404)
        self.assertRegex(head, r"(?i)\r\ncontent-type: application/json")
        self.assertEqual(body, b'{"error":{"message":"The model \'nope\' does not exist.","type":"not_found_error",'
                               b'"param":"model","code":"model_not_found"}}')
        status, _, body = curl(self.url + "/v1/nothing")
        self.assertEqual(status, 404)
        self.assertEqual(body, b'{"error":{"message":"Not found: /v1/nothing","type":"not_found_error",'
                               b'"param":null,"code":"not_found"}}')
        status, _, body = curl(self.url + "/v1/completions", {"model": self.model, "prompt": "x", "max_tokens": 0})
        self.assertEqual(status, 400)
        err = json.loads(body)["error"]
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertEqual(err["param"], "max_tokens")
        self.assertEqual(body, ('{"error":{"message":' + js(err["message"]) +
                                ',"type":"invalid_request_error","param":"max_tokens","code":null}}').encode())

    def test_disconnect_mid_stream_frees_the_blocks(self):
        max_tokens = 1900
        # The level before the request, once earlier tests' requests are over and reported (load
        # reports come every 100 ms): the same value twice, 250 ms apart, with nothing running.
        deadline = time.time() + 10
        base_used = None
        while time.time() < deadline:
            now_used = metric(self.url, "turbine_kv_blocks_used")
            if now_used == base_used and metric(self.url, "turbine_num_requests_running") == 0:
                break
            base_used = now_used
            time.sleep(0.25)
        base_generated = metric(self.url, "turbine_generation_tokens_total")
        body = json.dumps({"model": self.model, "prompt": "word " * 60, "max_tokens": max_tokens,
                           "temperature": 0, "ignore_eos": True, "stream": True}).encode()
        sock = socket.create_connection((self.server.host, self.server.port), timeout=30)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while got.count(b"data: ") < 3:
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "server closed the stream early")
            got += chunk
        self.assertNotIn(b"[DONE]", got)
        # Mid-stream the request holds blocks (load reports follow changes within milliseconds).
        deadline = time.time() + 5
        used = base_used
        while used <= base_used and time.time() < deadline:
            used = metric(self.url, "turbine_kv_blocks_used")
        self.assertGreater(used, base_used)
        sock.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            used = metric(self.url, "turbine_kv_blocks_used")
            running = metric(self.url, "turbine_num_requests_running")
            if used == base_used and running == 0:
                break
            time.sleep(0.02)
        self.assertEqual(used, base_used)
        self.assertEqual(running, 0)
        # It was aborted, not run to the end.
        generated = metric(self.url, "turbine_generation_tokens_total") - base_generated
        self.assertLess(generated, max_tokens)

class KvTiersTest(unittest.TestCase):
    """--kv-host-cache / --kv-disk-cache: blocks the worker's pool evicts come back for a later
    request instead of being recomputed."""

    def test_evicted_prompt_comes_back_from_the_host_or_disk_cache(self):
        # A pool of 8 blocks (32 KiB each for the tiny model): prompt A, four other prompts push
        # A's blocks out, then A again.
        def complete(url, model, prompt):
            status, _, out = curl(url + "/v1/completions", {
                "model": model, "prompt": prompt, "max_tokens": 6, "temperature": 0, "ignore_eos": True})
            self.assertEqual(status, 200, out)
            reply = json.loads(out)
            return reply["choices"][0]["text"], reply["usage"]

        prompt_a = "the cache keeps blocks " * 10
        results = {}
        for name, flags in (("none", ()), ("host", ("--kv-host-cache", "4MiB")),
                            ("disk", ("--kv-disk-cache", "4MiB", "--kv-disk-cache-dir", tempfile.gettempdir()))):
            server = Server("--workers", "1", *flags, kv_memory="256KiB")
            try:
                _, _, models = curl(server.url + "/v1/models")
                model = json.loads(models)["data"][0]["id"]
                text, usage = complete(server.url, model, prompt_a)
                self.assertGreater(usage["prompt_tokens"], 48)
                self.assertLess(usage["prompt_tokens"], 110)
                for i in range(4):
                    complete(server.url, model, f"other text number {i} " * 10)
                again, usage = complete(server.url, model, prompt_a)
                self.assertEqual(again, text)
                results[name] = usage["prompt_tokens_details"]["cached_tokens"]
                if flags:  # the worker's load reports carry its tier: /metrics shows it
                    deadline = time.time() + 5
                    while metric(server.url, f"turbine_kv_{name}_blocks_used") == 0 and time.time() < deadline:
                        time.sleep(0.05)
                    self.assertGreater(metric(server.url, f"turbine_kv_{name}_blocks_used"), 0)
                    self.assertEqual(metric(server.url, f"turbine_kv_{name}_blocks_total"), 128)  # 4 MiB / 32 KiB
                if flags:
                    self.assertIn(name + " cache 4 MiB", server.log)  # the worker's line names it
            finally:
                self.assertEqual(server.stop(), 0, server.log)
        self.assertEqual(results["none"], 0, "the flood must evict A from the pool")
        self.assertGreaterEqual(results["host"], 48)
        self.assertEqual(results["disk"], results["host"])


class ServeCliTest(unittest.TestCase):
    """Bad command lines and bad models: one line on stderr, exit code 2 (usage) or 1."""

    def run_serve(self, *args):
        p = subprocess.run([BIN, "serve", *args], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        return p.returncode, p.stderr

    def test_usage_errors_exit_2(self):
        code, err = self.run_serve("--router", "fastest")
        self.assertEqual(code, 2)
        self.assertIn("--router", err)
        code, err = self.run_serve("--model", MODEL, "--kv-cache-memory", "12XB")
        self.assertEqual(code, 2)
        self.assertIn("--kv-cache-memory", err)
        code, err = self.run_serve("--model", MODEL, "--kv-host-cache", "lots")
        self.assertEqual(code, 2)
        self.assertIn("--kv-host-cache", err)
        code, err = self.run_serve("--model", MODEL, "--kv-disk-cache", "1GiB", "--kv-disk-cache-dir",
                                   "/nonexistent/kv-dir")
        self.assertEqual(code, 2)
        self.assertIn("/nonexistent/kv-dir", err)
        code, err = self.run_serve("--model", MODEL, "--kv-cache-dtype", "q4")
        self.assertEqual(code, 2)
        self.assertIn("--kv-cache-dtype", err)

    def test_half_precision_kv_cache_serves_the_f32_answer(self):
        """--kv-cache-dtype bf16 / f16: the same greedy continuation as the f32 cache (the tiny
        model's top tokens are far apart), through the in-place half-precision decode kernels."""
        body = {"prompt": "The quick brown fox", "max_tokens": 12, "temperature": 0,
                "ignore_eos": True}
        texts = {}
        for dtype in ("f32", "bf16", "f16"):
            server = Server("--workers", "1", "--kv-cache-dtype", dtype)
            try:
                status, _, models = curl(server.url + "/v1/models")
                self.assertEqual(status, 200, models)
                body["model"] = json.loads(models)["data"][0]["id"]
                status, _, out = curl(server.url + "/v1/completions", body)
                self.assertEqual(status, 200, out)
                reply = json.loads(out)
                self.assertEqual(reply["usage"]["completion_tokens"], 12)
                texts[dtype] = reply["choices"][0]["text"]
                self.assertIn(f"tokens ({dtype})", server.log)  # the worker's line names the type
            finally:
                self.assertEqual(server.stop(), 0, server.log)
        self.assertEqual(texts["bf16"], texts["f32"])
        self.assertEqual(texts["f16"], texts["f32"])

    def test_bad_model_exits_1_naming_the_path(self):
        code, err = self.run_serve("--model", "/nonexistent/model-dir")
        self.assertEqual(code, 1)
        self.assertIn("/nonexistent/model-dir", err)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: curl_test.py TURBINE_BINARY TINY_MODEL_DIR")
    BIN, MODEL = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])
