#!/usr/bin/python3
"""The tiny generated model is healthy under the NumPy reference: finite logits of O(1) spread,
and greedy decoding that moves between many tokens (not one token repeated). Also checks the
reference_forward.py CLI contract (--out writes float32 [T, vocab]; --greedy prints N ids).

Usage: greedy_test.py MODEL_DIR
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_forward  # noqa: E402

STEPS = 32


def check_greedy(model, prompt):
    seq = list(prompt)
    out = []
    for _ in range(STEPS):
        logits = model.logits(seq)
        assert np.all(np.isfinite(logits)), "non-finite logits"
        nxt = int(np.argmax(logits[-1]))
        out.append(nxt)
        seq.append(nxt)
    distinct = len(set(out))
    longest_run, run = 1, 1
    for a, b in zip(out, out[1:]):
        run = run + 1 if a == b else 1
        longest_run = max(longest_run, run)
    assert distinct >= STEPS // 4, f"prompt {prompt}: degenerate greedy output {out}"
    assert longest_run < 8, f"prompt {prompt}: a token repeats {longest_run} times: {out}"
    return out


def main():
    model_dir = sys.argv[1]
    model = reference_forward.Model(model_dir)
    vocab = model.embed.shape[0]
    logits = model.logits([1, 2, 3, 4, 5])
    spread = logits.std(axis=-1)
    assert np.all((spread > 0.1) & (spread < 10)), f"logit spread {spread} is unhealthy"
    outs = [check_greedy(model, p) for p in ([1, 2, 3], [100, 200, 300, 400], [vocab - 2])]
    assert outs[0] != outs[1], "greedy output does not depend on the prompt"

    script = os.path.join(HERE, "reference_forward.py")
    with tempfile.TemporaryDirectory() as tmp:
        npy = os.path.join(tmp, "logits.npy")
        res = subprocess.run([sys.executable, script, model_dir, "--tokens", "1,2,3",
                              "--out", npy, "--greedy", "4"], capture_output=True, text=True,
                             check=True)
        saved = np.load(npy)
        assert saved.dtype == np.float32 and saved.shape == (3, vocab), saved.shape
        assert np.allclose(saved, model.logits([1, 2, 3]), atol=1e-4)
        ids = [int(t) for t in res.stdout.split()]
        assert ids == outs[0][:4], (ids, outs[0][:4])
    print("ok:", outs[0][:12])


if __name__ == "__main__":
    main()
