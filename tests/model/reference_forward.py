#!/usr/bin/python3
"""Independent NumPy (float64) forward pass of a Llama-family model from a Hugging Face folder.

It reads config.json and the safetensors checkpoint by hand (8-byte little-endian header length,
JSON header, raw data; F32/F16/BF16; single file or model.safetensors.index.json shards) and
computes the function transformers' LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM
define: RMSNorm, rotate-half RoPE (with linear or llama3 scaling), grouped-query causal
attention (optional q/k/v biases; Mistral's sliding window, Qwen2's with use_sliding_window on
the layers from max_window_layers), SwiGLU MLP, tied or untied lm_head.

Usage:
  reference_forward.py MODEL_DIR --tokens 1,2,3 --out logits.npy
      writes the logits of every position, float32 array [T, vocab]
  reference_forward.py MODEL_DIR --tokens 1,2,3 --greedy N
      prints the N greedily generated token ids on one line, separated by spaces
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np


def _to_float64(raw, dtype, shape):
    if dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2")
    elif dtype == "BF16":
        a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise SystemExit(f"reference_forward: dtype {dtype} not supported")
    return a.astype(np.float64).reshape(shape)


def read_safetensors(path):
    """Returns {name: float64 array} for one .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = _to_float64(data[base + b : base + end], e["dtype"], e["shape"])
    return out


def read_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for s in shards:
            tensors.update(read_safetensors(os.path.join(model_dir, s)))
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def inv_frequencies(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "linear":
        inv = inv / rs["factor"]
    elif kind == "llama3":
        factor = rs["factor"]
        low, high = rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
        old_ctx = rs.get("original_max_position_embeddings", 8192)
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        inv = np.where(medium, smoothed, scaled)
    elif kind != "default":
        raise SystemExit(f"reference_forward: rope_scaling {kind} not supported")
    return inv


def rope(x, positions, inv):
    """x: [T, heads, head_dim]; rotate-half pairing (i, i + head_dim/2)."""
    ang = np.outer(positions, inv)  # [T, hd/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


class Model:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        c = self.cfg
        self.t = read_checkpoint(model_dir)
        self.n_layers = c["num_hidden_layers"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_heads
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.n_heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.inv = inv_frequencies(c, self.head_dim)
        # Sliding window as transformers applies it: the token at position p sees [p - W + 1, p].
        arch = c["architectures"][0]
        self.window, self.window_from = 0, 0
        if arch == "MistralForCausalLM" and c.get("sliding_window"):
            self.window = c["sliding_window"]
        elif arch == "Qwen2ForCausalLM" and c.get("use_sliding_window") and c.get("sliding_window"):
            self.window, self.window_from = c["sliding_window"], c.get("max_window_layers", 28)
        self.embed = self.t["model.embed_tokens.weight"]
        if c.get("tie_word_embeddings", False) or "lm_head.weight" not in self.t:
            self.lm_head = self.embed
        else:
            self.lm_head = self.t["lm_head.weight"]

    def _linear(self, x, name):
        y = x @ self.t[name + ".weight"].T
        if name + ".bias" in self.t:
            y = y + self.t[name + ".bias"]
        return y

    def _attention(self, h, p, positions, window):
        T, hd = h.shape[0], self.head_dim
        q = self._linear(h, p + "self_attn.q_proj").reshape(T, self.n_heads, hd)
        k = self._linear(h, p + "self_attn.k_proj").reshape(T, self.n_kv, hd)
        v = self._linear(h, p + "self_attn.v_proj").reshape(T, self.n_kv, hd)
        q, k = rope(q, positions, self.inv), rope(k, positions, self.inv)
        group = self.n_heads // self.n_kv
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        mask = np.triu(np.ones((T, T), dtype=bool), k=1)
        if window > 0:
            mask |= np.tril(np.ones((T, T), dtype=bool), k=-window)  # key s <= query t - window
        scores = np.where(mask[None], -np.inf, scores)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        out = np.einsum("hts,shd->thd", probs, v).reshape(T, self.n_heads * hd)
        return self._linear(out, p + "self_attn.o_proj")

    def logits(self, tokens):
        x = self.embed[np.asarray(tokens)]
        positions = np.arange(len(tokens), dtype=np.float64)
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            h = rms_norm(x, self.t[p + "input_layernorm.weight"], self.eps)
            window = self.window if i >= self.window_from else 0
            x = x + self._attention(h, p, positions, window)
            h = rms_norm(x, self.t[p + "post_attention_layernorm.weight"], self.eps)
            gate = self._linear(h, p + "mlp.gate_proj")
            up = self._linear(h, p + "mlp.up_proj")
            x = x + self._linear(gate / (1.0 + np.exp(-gate)) * up, p + "mlp.down_proj")
        x = rms_norm(x, self.t["model.norm.weight"], self.eps)
        return x @ self.lm_head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--out", help="write logits [T, vocab] as float32 .npy")
    ap.add_argument("--greedy", type=int, default=0, help="print N greedy token ids")
    args = ap.parse_args()
    tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    if not tokens:
        raise SystemExit("reference_forward: --tokens is empty")
    model = Model(args.model_dir)
    vocab = model.embed.shape[0]
    if any(t < 0 or t >= vocab for t in tokens):
        raise SystemExit(f"reference_forward: a token id is outside [0, {vocab})")
    if args.out:
        np.save(args.out, model.logits(tokens).astype(np.float32))
    if args.greedy > 0:
        seq = list(tokens)
        generated = []
        for _ in range(args.greedy):
            nxt = int(np.argmax(model.logits(seq)[-1]))
            generated.append(nxt)
            seq.append(nxt)
        print(" ".join(str(t) for t in generated))
    if not args.out and args.greedy <= 0:
        ap.error("give --out and/or --greedy")


if __name__ == "__main__":
    sys.exit(main())
