#!/usr/bin/python3
"""Disaggregated serving as separate processes on loopback (docs/fleet.md): a real etcd, a
`turbine worker --role prefill`, a `turbine worker --role decode`, an aggregated worker serving the
same model under another name (the reference), and `turbine frontend --max-local-prefill-tokens 32`.

  - a long prompt is prefilled on the prefill worker, whose KV blocks the decode worker fetches over
    TCP: the same greedy text as the aggregated worker, and the decode worker reports the prompt's
    full blocks as cached;
  - a short prompt is prefilled by the decode worker itself;
  - a long prompt whose tokens are scored (prompt logprobs) too, with the aggregated worker's scores;
  - a streamed request works the same way;
  - with the prefill worker killed (SIGKILL), long prompts still succeed (prefilled locally), with
    the same text;
  - the workers' own logs count the fetches and the blocks served.

usage: disagg_test.py TURBINE_BINARY TINY_MODEL_DIR
"""
import json
import os
import signal
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_test as ft  # noqa: E402  (the fleet helpers: etcd, processes, HTTP, metrics)

MAX_LOCAL = 32


class DisaggTest(ft.FleetCase):
    @classmethod
    def start_fleet(cls):
        cls.frontend = ft.start_frontend(cls.etcd, "--router", "kv", "--max-local-prefill-tokens", str(MAX_LOCAL))
        cls.procs.append(cls.frontend)
        cls.prefill = ft.start_worker(cls.etcd, "--role", "prefill")
        cls.decode = ft.start_worker(cls.etcd, "--role", "decode")
        cls.agg = ft.start_worker(cls.etcd, "--served-model-name", "tiny-agg")
        cls.procs += [cls.prefill, cls.decode, cls.agg]
        ft.wait_until(lambda: ft.metric(cls.frontend, "turbine_fleet_workers", model="tiny") == 1 and
                      ft.metric(cls.frontend, "turbine_fleet_prefill_workers", model="tiny") == 1 and
                      ft.metric(cls.frontend, "turbine_fleet_workers", model="tiny-agg") == 1, 30,
                      "the frontend to see the prefill, decode and aggregated workers")

    def remote(self):
        return ft.metric(self.frontend, "turbine_disagg_remote_prefills_total", model="tiny")

    def test_1_the_logs_name_the_roles_and_the_transfer_address(self):
        self.assertIn("role prefill", self.prefill.log)
        self.assertIn("KV transfer on tcp://127.0.0.1:", self.prefill.log)
        self.assertIn("role decode", self.decode.log)
        self.assertNotIn("KV transfer on", self.decode.log)

    def test_2_a_long_prompt_is_prefilled_remotely_with_the_same_text(self):
        prompt = ft.long_prompt("disagg-a", 100)
        before = self.remote()
        usage_reports = ft.metric(self.frontend, "turbine_router_usage_reports_total", model="tiny")
        got = ft.complete(self.frontend, prompt, max_tokens=12)
        # The router predicted the decode worker's own cache: imported blocks are not its accuracy.
        self.assertEqual(ft.metric(self.frontend, "turbine_router_usage_reports_total", model="tiny"), usage_reports)
        ref = ft.complete(self.frontend, prompt, max_tokens=12, model="tiny-agg")
        self.assertEqual(self.remote(), before + 1)
        self.assertEqual(got["choices"][0]["text"], ref["choices"][0]["text"])
        prompt_tokens = got["usage"]["prompt_tokens"]
        self.assertGreater(prompt_tokens, MAX_LOCAL)
        # Every full block but the one with the last prompt token came from the prefill worker.
        self.assertEqual(ft.cached(got), (prompt_tokens - 1) // 16 * 16, got)
        self.assertEqual(ft.cached(ref), 0, ref)

    def test_3_a_short_prompt_is_prefilled_by_the_decode_worker(self):
        before = self.remote()
        usage_reports = ft.metric(self.frontend, "turbine_router_usage_reports_total", model="tiny")
        got = ft.complete(self.frontend, "short one", max_tokens=4)
        self.assertEqual(ft.metric(self.frontend, "turbine_router_usage_reports_total", model="tiny"), usage_reports + 1)
        self.assertLessEqual(got["usage"]["prompt_tokens"], MAX_LOCAL)
        self.assertEqual(got["usage"]["completion_tokens"], 4)
        self.assertEqual(self.remote(), before)

    def test_3b_prompt_logprobs_are_scored_by_the_decode_worker_itself(self):
        # lm-evaluation-harness's request, over gRPC: a long prompt's tokens scored (echo,
        # logprobs, max_tokens 0). The prefill worker has no logits to give: prefilled locally,
        # the same scores as the aggregated worker's.
        prompt = ft.long_prompt("disagg-scored", 100)
        before = self.remote()
        body = {"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0}
        status, got = ft.http(self.frontend.url + "/v1/completions", dict(body, model="tiny"))
        self.assertEqual(status, 200, got)
        status, ref = ft.http(self.frontend.url + "/v1/completions", dict(body, model="tiny-agg"))
        self.assertEqual(status, 200, ref)
        self.assertEqual(self.remote(), before)
        lp, ref_lp = got["choices"][0]["logprobs"], ref["choices"][0]["logprobs"]
        self.assertEqual(len(lp["tokens"]), got["usage"]["prompt_tokens"])
        self.assertGreater(len(lp["tokens"]), MAX_LOCAL)
        self.assertIsNone(lp["token_logprobs"][0])
        self.assertEqual(lp["tokens"], ref_lp["tokens"])
        for a, b in zip(lp["token_logprobs"][1:], ref_lp["token_logprobs"][1:]):
            self.assertAlmostEqual(a, b, delta=1e-3)
        self.assertEqual(got["usage"]["completion_tokens"], 0)

    def test_4_a_streamed_long_request(self):
        prompt = ft.long_prompt("disagg-stream", 90)
        before = self.remote()
        body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 10, "temperature": 0,
                           "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
        req = urllib.request.Request(self.frontend.url + "/v1/completions", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        text, usage = "", None
        with urllib.request.urlopen(req, timeout=120) as r:
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                self.assertNotIn("error", chunk)
                if chunk.get("choices"):
                    text += chunk["choices"][0]["text"]
                if chunk.get("usage"):
                    usage = chunk["usage"]
        self.assertEqual(usage["completion_tokens"], 10)
        self.assertEqual(self.remote(), before + 1)
        status, ref = ft.http(self.frontend.url + "/v1/completions",
                              {"model": "tiny-agg", "prompt": prompt, "max_tokens": 10, "temperature": 0,
                               "ignore_eos": True})
        self.assertEqual(status, 200, ref)
        self.assertEqual(text, ref["choices"][0]["text"])

    def test_5_without_the_prefill_worker_long_prompts_are_prefilled_locally(self):
        self.prefill.stop(signal.SIGKILL)
        prompt = ft.long_prompt("disagg-b", 100)
        got = ft.complete(self.frontend, prompt, max_tokens=8)
        ref = ft.complete(self.frontend, prompt, max_tokens=8, model="tiny-agg")
        self.assertEqual(got["choices"][0]["text"], ref["choices"][0]["text"])
        self.assertEqual(ft.cached(got), 0, got)
        ft.wait_until(lambda: ft.metric(self.frontend, "turbine_fleet_prefill_workers", model="tiny") == 0,
                      3 * ft.LEASE_TTL_S + 10, "the killed prefill worker to leave")
        self.assertEqual(ft.complete(self.frontend, prompt + " again", max_tokens=3)["usage"]["completion_tokens"], 3)

    def test_6_the_decode_worker_counts_its_fetches(self):
        self.assertEqual(self.decode.stop(signal.SIGTERM), 0, self.decode.log)
        line = next((l for l in self.decode.log.splitlines() if "KV transfer:" in l), "")
        fetches = int(line.split("KV transfer: ")[1].split(" fetches")[0]) if line else 0
        self.assertGreaterEqual(fetches, 2, self.decode.log)


if __name__ == "__main__":
    ft.BIN, ft.MODEL = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
