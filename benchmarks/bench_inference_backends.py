"""Inference backends: torch, onnxruntime and OpenVINO on the same recognizer, same process.

    python benchmarks/bench_inference_backends.py [--rounds 10] [--threads 1] [--backends torch,onnxruntime,openvino]

The published-size ST-GCN++ (untrained, ntu25 3D, 60 classes, one person, T=64: speed does not
depend on the weights) is saved as a checkpoint and loaded once per backend through
``Predictor.from_checkpoint(..., backend=...)`` (so the non-torch backends export and check the
recognizer as ``finetec predict --backend`` does). ``Predictor.logits`` on model inputs
(preprocessing excluded) is timed on one clip and on a batch of 16, the backends alternated call
by call for ``--rounds`` rounds after one untimed call each, ``--threads`` torch threads (the
other runtimes get as many). Printed: ms per call (median over the rounds), ms per clip for the
batch, and the maximum absolute logit difference to torch on the batch. A backend whose packages
are missing is skipped with a note. The 1-minute load average is printed before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from finetec.api import Predictor  # noqa: E402
from finetec.backends import BACKENDS  # noqa: E402
from finetec.errors import FinetecError  # noqa: E402
from finetec.export import example_inputs  # noqa: E402

BATCHES = (1, 16)


def _published(folder: Path) -> Path:
    """The published-size ST-GCN++ (untrained), saved as a checkpoint (as benchmarks/bench_stream.py)."""
    from finetec.layouts import get_layout
    from finetec.models.checkpoint import save_checkpoint
    from finetec.models.registry import create_model

    torch.manual_seed(0)
    net = create_model("stgcnpp", num_classes=60, layout="ntu25", in_channels=3, num_person=1)
    info = {"config": {"task": "classification", "seed": 0,
                       "pipeline": {"clip_len": 64, "filler": "linear", "features": ["joint"], "max_persons": 1}},
            "class_names": [f"c{i}" for i in range(60)], "layout": get_layout("ntu25").to_dict(), "clip_len": 64,
            "seed": 0, "epoch": 0, "metrics": {}}
    return save_checkpoint(folder / "stgcnpp", net, info)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    names = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _published(Path(tmp))
        preds: dict[str, Predictor] = {}
        for b in names:
            t = time.perf_counter()
            try:
                preds[b] = Predictor.from_checkpoint(ckpt, backend=b)
            except FinetecError as e:
                print(f"skipped {b}: {e}")
                continue
            print(f"loaded {b} in {time.perf_counter() - t:.1f} s"
                  + (f" (graph batch axis {'fixed at 1: batches run clip by clip' if preds[b]._onnx.fixed_batch else 'dynamic'})"
                     if preds[b]._onnx is not None else ""))
    ref_pred = preds.get("torch") or next(iter(preds.values()))
    x, m = example_inputs(ref_pred, "recognizer", batch=max(BATCHES), rng=np.random.default_rng(0))
    inputs = {n: (x[:n], m[:n]) for n in BATCHES}
    times: dict[tuple[str, int], list[float]] = {(b, n): [] for b in preds for n in BATCHES}
    out = {b: p.logits(*inputs[max(BATCHES)]) for b, p in preds.items()}   # also the untimed first call
    for b, p in preds.items():
        p.logits(*inputs[1])
    for _ in range(args.rounds):
        for n in BATCHES:
            for b, p in preds.items():
                t = time.perf_counter()
                p.logits(*inputs[n])
                times[(b, n)].append(1e3 * (time.perf_counter() - t))
    print(f"\nST-GCN++ (published size, ntu25 3D, 60 classes, T=64, M=1), {args.threads} thread(s), "
          f"median of {args.rounds} rounds")
    print("\n| backend | 1 clip, ms | batch of 16, ms | ms per clip in the batch | max abs logit diff to torch |")
    print("|---|---:|---:|---:|---:|")
    for b in preds:
        diff = float(np.max(np.abs(out[b] - out["torch"]))) if "torch" in out else float("nan")
        b1, b16 = (statistics.median(times[(b, n)]) for n in BATCHES)
        print(f"| {b} | {b1:.1f} | {b16:.1f} | {b16 / max(BATCHES):.1f} | {diff:.2g} |")
    versions = [f"torch {torch.__version__}"]
    for mod in ("onnxruntime", "openvino"):
        if mod in preds:
            versions.append(f"{mod} {__import__(mod).__version__}")
    print(f"\n{'; '.join(versions)}; {time.perf_counter() - t0:.0f} s; 1-minute load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
