"""Speed of the data side: making the synthetic dataset, the gap fillers, the clip pipeline.

Reports, on this machine (single process, NumPy on the CPU):

* the wall time of ``make_dataset(layout, clips=1000, seed=0)`` for ``coco17`` and ``ntu25``
  (best and median of ``--repeats`` runs);
* the time to fill one 64-frame, 25-joint, one-person 3D clip with 75 % of the frames dropped
  (``random`` pattern), per filler (median over ``--fill-iters`` calls);
* the time of one test-mode pipeline call (sampling to 64 frames, severe corruption,
  normalisation, linear filling, joint+bone features) on synthetic ``ntu25`` clips.

With ``--probe``, also a learnability probe: a small temporal CNN (three 1D convolutions over
time on the flattened joints, joint + motion features, 48 frames, linear filling; Adam 3e-3,
``--probe-epochs`` epochs, batch 32, seed 0) trained on the ``train`` subjects and tested on the
``test`` subjects of 1000 synthetic clips, at the same level for training and test, with the
per-class accuracy. It says how hard the dataset is without the cost of a GCN run; it is not one
of the project's models.

Usage::

    python benchmarks/bench_synthetic.py
    python benchmarks/bench_synthetic.py --repeats 5 --json results.json
    python benchmarks/bench_synthetic.py --probe --probe-layouts ntu25 --probe-levels clean severe
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fill-iters", type=int, default=300)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--probe", action="store_true", help="also run the learnability probe")
    ap.add_argument("--probe-only", action="store_true", help="run only the learnability probe")
    ap.add_argument("--probe-layouts", nargs="+", default=["ntu25", "coco17"])
    ap.add_argument("--probe-levels", nargs="+", default=["clean", "severe"])
    ap.add_argument("--probe-epochs", type=int, default=40)
    args = ap.parse_args(argv)
    if args.probe_only:
        results = {"probe": probe(args.probe_layouts, args.probe_levels, args.probe_epochs)}
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
        return 0

    from finetec.data.corruption import corrupt, test_rng
    from finetec.data.fillers import FILLERS, fill
    from finetec.data.pipeline import ClipPipeline, PipelineConfig
    from finetec.data.synthetic import make_dataset

    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                     "python": platform.python_version(), "numpy": np.__version__, "make_dataset": {},
                     "fill_ms": {}, "pipeline_ms": None}
    print(f"# finetec data benchmarks ({results['machine']}, Python {results['python']}, NumPy {np.__version__})\n")
    print("| layout | clips | best (s) | median (s) |\n|---|---|---|---|")
    for layout in ("coco17", "ntu25"):
        times = _time(lambda: make_dataset(layout, clips=args.clips, seed=0), args.repeats)
        results["make_dataset"][layout] = {"clips": args.clips, "best_s": min(times), "median_s": statistics.median(times)}
        print(f"| {layout} | {args.clips} | {min(times):.2f} | {statistics.median(times):.2f} |")

    ds = make_dataset("ntu25", clips=56, seed=0, frames=64)
    kp = ds[0].keypoint[:, :64]
    mask = ds[0].mask[:, :64]
    x, m = corrupt(kp, mask, "severe", "random", test_rng(0, "bench", "severe", "random"))
    print("\n| filler | ms per (1, 64, 25, 3) clip, severe |\n|---|---|")
    for method in FILLERS:
        fill(x, m, method)
        times = _time(lambda: fill(x, m, method), args.fill_iters)
        ms = statistics.median(times) * 1e3
        results["fill_ms"][method] = ms
        print(f"| {method} | {ms:.3f} |")

    pipe = ClipPipeline(ds.layout, PipelineConfig(clip_len=64, level="severe", filler="linear",
                                                  features=("joint", "bone")), train=False, seed=0)
    samples = [ds[i] for i in range(len(ds))]
    times = _time(lambda: [pipe(s, i) for i, s in enumerate(samples)], args.repeats)
    ms = min(times) / len(samples) * 1e3
    results["pipeline_ms"] = ms
    print(f"\npipeline (test mode, severe, linear, joint+bone): {ms:.3f} ms per clip")
    if args.probe:
        results["probe"] = probe(args.probe_layouts, args.probe_levels, args.probe_epochs)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


def probe(layouts: list[str], levels: list[str], epochs: int) -> list[dict]:
    """Train/test a small temporal CNN per (layout, level); print and return the accuracies."""
    import torch
    import torch.nn as nn

    from finetec.data.pipeline import ClipPipeline, PipelineConfig, collate
    from finetec.data.synthetic import CLASS_NAMES, make_dataset

    out = []
    short = [n.replace("wave_right_", "wave_").replace("circle_right_", "circle_").replace("raise_arms_", "raise_") for n in CLASS_NAMES]
    print("\n| layout | level | top-1 | " + " | ".join(short) + " | s |")
    print("|---|---|---|" + "---|" * len(short) + "---|")
    for layout in layouts:
        ds = make_dataset(layout, clips=1000, seed=0)
        for level in levels:
            t0 = time.perf_counter()
            cfg = PipelineConfig(clip_len=48, level=level, filler="linear", features=("joint", "motion"))

            def arrays(train: bool, epoch: int):
                pipe = ClipPipeline(ds.layout, cfg, train=train, seed=0)
                idx = ds.split_indices("train" if train else "test")
                b = collate([pipe(ds[int(i)], int(i), epoch) for i in idx])
                x = b["keypoint"][:, 0]
                return x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2).contiguous(), b["label"]

            x_test, y_test = arrays(False, 0)
            g = torch.Generator().manual_seed(0)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                net = nn.Sequential(
                    nn.Conv1d(x_test.shape[1], 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(),
                    nn.Conv1d(64, 64, 5, padding=2, stride=2), nn.BatchNorm1d(64), nn.ReLU(),
                    nn.Conv1d(64, 64, 5, padding=2, stride=2), nn.BatchNorm1d(64), nn.ReLU(),
                    nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, len(CLASS_NAMES)))
            opt = torch.optim.Adam(net.parameters(), 3e-3)
            for epoch in range(epochs):
                x, y = arrays(True, epoch)
                net.train()
                perm = torch.randperm(len(y), generator=g)
                for i in range(0, len(perm), 32):
                    j = perm[i:i + 32]
                    loss = nn.functional.cross_entropy(net(x[j]), y[j])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            net.eval()
            with torch.no_grad():
                pred = net(x_test).argmax(1).numpy()
            y = y_test.numpy()
            per_class = [float((pred[y == k] == k).mean()) for k in range(len(CLASS_NAMES))]
            top1 = float((pred == y).mean())
            secs = time.perf_counter() - t0
            out.append({"layout": layout, "level": level, "top1": top1, "per_class": per_class,
                        "epochs": epochs, "seconds": secs})
            print(f"| {layout} | {level} | {top1:.3f} | " + " | ".join(f"{a:.2f}" for a in per_class)
                  + f" | {secs:.0f} |", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
