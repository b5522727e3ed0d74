#!/usr/bin/python3
"""A stand-in for a vLLM OpenAI-compatible server, for `turbine worker --engine upstream` tests,
written from vLLM's documented API (no model: the tokens are a fixed function of the prompt).

What it does as vLLM does:
  - GET /health -> 200;
  - POST /v1/completions with `prompt` a list of token ids, `stream: true`,
    `stream_options.include_usage`, `return_token_ids` (vLLM >= 0.10.2: each streamed choice
    carries `token_ids`, the ids of its new tokens): HTTP/1.1 chunked SSE, one event per token
    (`choices[0].text`, `token_ids`, `finish_reason` on the last), then a usage event with
    `prompt_tokens_details.cached_tokens`, then `data: [DONE]`;
  - honours max_tokens ("length"), stop_token_ids and its EOS id unless ignore_eos ("stop"; the
    token is in token_ids), min_tokens; an unknown model is a 404 OpenAI error object;
  - a prefix cache of full blocks: cached_tokens = the longest cached run of whole blocks, and
    each prompt's blocks are published as vLLM KV events through a vllm_publisher.py process
    (pyzmq + msgpack, vLLM's wire format), as vLLM does after a prefill;
  - a client that goes away mid-stream aborts the request (counted in GET /stats).
With --api sglang it stands in for SGLang instead, written from SGLang's documented native API:
POST /generate {"input_ids": [...], "sampling_params": {max_new_tokens, stop_token_ids,
ignore_eos, min_new_tokens, ...}, "stream": true} answers SSE events {"text", "output_ids",
"meta_info": {"id", "finish_reason": null | {"type": "length", "length": N} | {"type": "stop",
"matched": ID}, "prompt_tokens", "completion_tokens", "cached_tokens"}} and `data: [DONE]`;
output_ids are all the ids so far (older SGLang), or only the new ones with --incremental (SGLang
with --incremental-streaming-output, and newer versions); --abort-over N ends prompts longer than
N with SGLang's engine-side abort ({"type": "abort", "message", "status_code": 400}). Its KV
events are vLLM's format (SGLang's publisher is the same wire format).

Test hooks (not vLLM's): POST /test/cache {"tokens": [...]} caches and publishes blocks as a
prefill would; POST /test/forget empties the publisher's replay buffer (as if it had overflowed:
a subscriber joining now learns nothing of the blocks published before); GET /stats counts requests, finished, aborted and keeps the last request body.
Generated token i of a prompt p is (p[-1] + 1 + i) % vocab; one token per --token-delay s.
`return_token_ids: false` gets text only, as an older vLLM would answer.

GET /metrics: the engine's load in Prometheus' text format, with vLLM's names (V1: num_requests_
running / _waiting, kv_cache_usage_perc, prompt / generation_tokens_total, cache_config_info's
block_size and num_gpu_blocks) or, with --api sglang and --enable-metrics (as SGLang needs), SGLang's
(num_running_reqs, num_queue_reqs, max_total_num_tokens, num_used_tokens, token_usage, the token
counters). With --max-running N, N requests stream at once and the others wait (its queue); the
pool is --num-gpu-blocks blocks, used by the prompts of the running requests.

At start it prints "ready http://127.0.0.1:PORT PUB_ENDPOINT REPLAY_ENDPOINT".
usage: vllm_server.py --model NAME [--vocab N] [--block-size B] [--eos ID] [--token-delay S]
                      [--api openai|sglang [--incremental] [--abort-over N] [--enable-metrics]]
                      [--max-running N] [--num-gpu-blocks N]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLISHER = os.path.join(HERE, "..", "runtime", "vllm_publisher.py")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.cached = set()  # tuples of whole-block prompt prefixes
        self.stats = {"requests": 0, "finished": 0, "aborted": 0, "last_body": None}
        # The engine's queue, as its /metrics reports it: --max-running requests stream at once,
        # the others wait for a place (vLLM's and SGLang's scheduler queue).
        self.admission = threading.Semaphore(args.max_running) if args.max_running > 0 else None
        self.running, self.waiting, self.used_tokens = 0, 0, 0
        self.prompt_tokens_total, self.generation_tokens_total = 0, 0
        self.pub = subprocess.Popen([sys.executable, PUBLISHER, str(args.block_size), ""], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
        ready = self.pub.stdout.readline().split()
        self.pub_endpoint, self.replay_endpoint = ready[1], ready[2]

    def command(self, cmd):
        """One command to the publisher (vllm_publisher.py's protocol), answered "ok <seq>"."""
        self.pub.stdin.write(json.dumps(cmd) + "\n")
        self.pub.stdin.flush()
        self.pub.stdout.readline()

    def prefill(self, prompt):
        """Cached tokens of the prompt; caches its blocks and publishes them (BlockStored)."""
        b = self.args.block_size
        with self.lock:
            hit = 0
            for end in range(b, len(prompt) + 1, b):
                if tuple(prompt[:end]) in self.cached:
                    hit = end
                else:
                    break
            for end in range(b, len(prompt) + 1, b):
                self.cached.add(tuple(prompt[:end]))
            self.command({"op": "request", "tokens": prompt})
        return hit


def continuation(state, prompt, max_tokens, stop_token_ids, ignore_eos, min_tokens):
    """The generated tokens, one per --token-delay s, each with its finish reason (None, "stop" on a
    stop token or the EOS unless ignore_eos, past min_tokens; "length" at max_tokens)."""
    stop_ids = set(stop_token_ids or [])
    if not ignore_eos:
        stop_ids.add(state.args.eos)
    n = 0
    while True:
        tok = (prompt[-1] + 1 + n) % state.args.vocab
        n += 1
        finish = "stop" if tok in stop_ids and n > (min_tokens or 0) else "length" if n >= max_tokens else None
        time.sleep(state.args.token_delay)
        with state.lock:
            state.generation_tokens_total += 1
        yield tok, finish
        if finish:
            return


def metrics_text(state):
    """The engine's gauges and counters in Prometheus' text format, named as vLLM (V1) or SGLang
    name them."""
    a = state.args
    with state.lock:
        run, wait, used = state.running, state.waiting, state.used_tokens
        prompt, gen = state.prompt_tokens_total, state.generation_tokens_total
    pool = a.num_gpu_blocks * a.block_size
    if a.api == "sglang":
        labels = f'{{model_name="{a.model}",tp_rank="0"}}'
        rows = [("num_running_reqs", run), ("num_queue_reqs", wait), ("max_total_num_tokens", pool),
                ("num_used_tokens", used), ("token_usage", used / pool), ("prompt_tokens_total", prompt),
                ("generation_tokens_total", gen)]
        return "".join(f"# TYPE sglang:{n} gauge\nsglang:{n}{labels} {float(v)}\n" for n, v in rows)
    labels = f'{{engine="0",model_name="{a.model}"}}'
    rows = [("num_requests_running", run), ("num_requests_waiting", wait), ("kv_cache_usage_perc", used / pool),
            ("prompt_tokens_total", prompt), ("generation_tokens_total", gen)]
    text = "".join(f"# HELP vllm:{n} .\n# TYPE vllm:{n} gauge\nvllm:{n}{labels} {float(v)}\n" for n, v in rows)
    return text + (f'vllm:cache_config_info{{block_size="{a.block_size}",cache_dtype="auto",'
                   f'num_gpu_blocks="{a.num_gpu_blocks}",num_cpu_blocks="None"}} 1.0\n')


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_json(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/stats":
                with state.lock:
                    self.send_json(200, state.stats)
            elif self.path == "/metrics" and (state.args.api == "openai" or state.args.enable_metrics):
                body = metrics_text(state).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_json(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})

        def chunk(self, text):
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/test/cache":  # the test's hook (not vLLM's): blocks cached as by a prefill
                return self.send_json(200, {"cached_tokens": state.prefill(body["tokens"])})
            if self.path == "/test/forget":  # the test's hook: the replay buffer overflowed
                with state.lock:
                    state.command({"op": "forget"})
                return self.send_json(200, {})
            with state.lock:
                state.stats["requests"] += 1
                state.stats["last_body"] = body
            if state.args.api == "sglang":
                return self.sglang_generate(body)
            if self.path != "/v1/completions":
                return self.send_json(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})
            if body.get("model") != state.args.model:
                return self.send_json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                                      "type": "NotFoundError", "param": None, "code": 404}})
            prompt = body.get("prompt")
            if not isinstance(prompt, list) or not prompt or not all(isinstance(t, int) for t in prompt):
                return self.send_json(400, {"error": {"message": "prompt: expected token ids", "code": 400}})
            with_ids = bool(body.get("return_token_ids"))
            cached = state.prefill(prompt)
            head = {"id": "cmpl-" + str(time.time_ns()), "object": "text_completion", "created": int(time.time()),
                    "model": state.args.model}

            def events():
                n = 0
                for tok, finish in continuation(state, prompt, body.get("max_tokens", 16), body.get("stop_token_ids"),
                                                body.get("ignore_eos"), body.get("min_tokens", 0)):
                    n += 1
                    choice = {"index": 0, "text": f"<{tok}>", "logprobs": None, "finish_reason": finish,
                              "stop_reason": None}
                    if with_ids:
                        choice["token_ids"] = [tok]
                    yield {**head, "choices": [choice], "usage": None}
                yield {**head, "choices": [], "usage": {"prompt_tokens": len(prompt), "total_tokens": len(prompt) + n,
                                                        "completion_tokens": n,
                                                        "prompt_tokens_details": {"cached_tokens": cached}}}
            self.stream(events(), len(prompt))

        def sglang_generate(self, body):
            if self.path != "/generate":
                return self.send_json(404, {"detail": "Not Found"})
            prompt = body.get("input_ids")
            if not isinstance(prompt, list) or not prompt or not all(isinstance(t, int) for t in prompt):
                return self.send_json(400, {"error": {"message": "input_ids: expected token ids"}})
            sp = body.get("sampling_params") or {}
            cached = state.prefill(prompt)
            rid = "%032x" % time.time_ns()

            def events():
                meta = {"id": rid, "finish_reason": None, "prompt_tokens": len(prompt), "completion_tokens": 0,
                        "cached_tokens": cached}
                if state.args.abort_over and len(prompt) > state.args.abort_over:
                    meta["finish_reason"] = {"type": "abort", "message": "prompt too long for the stand-in",
                                             "status_code": 400, "err_type": "BadRequestError"}
                    yield {"text": "", "output_ids": [], "meta_info": meta}
                    return
                out = []
                max_tokens = sp.get("max_new_tokens", 128)
                for tok, finish in continuation(state, prompt, max_tokens, sp.get("stop_token_ids"),
                                                sp.get("ignore_eos"), sp.get("min_new_tokens", 0)):
                    out.append(tok)
                    meta = {**meta, "completion_tokens": len(out),
                            "finish_reason": {"type": "stop", "matched": tok} if finish == "stop" else
                            {"type": "length", "length": max_tokens} if finish == "length" else None}
                    ids = [tok] if state.args.incremental else list(out)
                    yield {"text": "".join(f"<{t}>" for t in out), "output_ids": ids, "meta_info": meta}
            self.stream(events(), len(prompt))

        def stream(self, events, prompt_len):
            """A chunked SSE response: each event as `data: JSON`, then `data: [DONE]`; a client that
            goes away aborts it. It waits for a place first (--max-running), counted as waiting."""
            if state.admission is not None:
                with state.lock:
                    state.waiting += 1
                state.admission.acquire()
            with state.lock:
                if state.admission is not None:
                    state.waiting -= 1
                state.running += 1
                state.used_tokens += prompt_len
                state.prompt_tokens_total += prompt_len
            try:
                self.stream_events(events)
            finally:
                with state.lock:
                    state.running -= 1
                    state.used_tokens -= prompt_len
                if state.admission is not None:
                    state.admission.release()

        def stream_events(self, events):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for event in events:
                    self.chunk("data: " + json.dumps(event) + "\n\n")
                self.chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                with state.lock:
                    state.stats["finished"] += 1
            except (BrokenPipeError, ConnectionResetError):
                with state.lock:
                    state.stats["aborted"] += 1
                self.close_connection = True

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--eos", type=int, default=2)
    ap.add_argument("--token-delay", type=float, default=0.0)
    ap.add_argument("--api", choices=["openai", "sglang"], default="openai")
    ap.add_argument("--incremental", action="store_true")
    ap.add_argument("--abort-over", type=int, default=0)
    ap.add_argument("--max-running", type=int, default=0)
    ap.add_argument("--num-gpu-blocks", type=int, default=1000)
    ap.add_argument("--enable-metrics", action="store_true")
    args = ap.parse_args()
    state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    print(f"ready http://127.0.0.1:{server.server_address[1]} {state.pub_endpoint} {state.replay_endpoint}",
          flush=True)
    try:
        server.serve_forever()
    finally:
        state.pub.stdin.write(json.dumps({"op": "quit"}) + "\n")
        state.pub.stdin.flush()


if __name__ == "__main__":
    main()
