"""Speed of the data side: making the synthetic dataset, the gap fillers, the clip pipeline.

Reports, on this machine (single process, NumPy on the CPU):

* the wall time of ``make_dataset(layout, clips=1000, seed=0)`` for ``coco17`` and ``ntu25``
  (best and median of ``--repeats`` runs);
* the time to fill one 64-frame, 25-joint, one-person 3D clip with 75 % of the frames dropped
  (``random`` pattern), per filler (median over ``--fill-iters`` calls);
* the time of one test-mode pipeline call (sampling to 64 frames, severe corruption,
  normalisation, linear filling, joint+bone features) on synthetic ``ntu25`` clips.

Usage::

    python benchmarks/bench_synthetic.py
    python benchmarks/bench_synthetic.py --repeats 5 --json results.json
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
    args = ap.parse_args(argv)

    from finetec.data.corruption import corrupt, test_rng
    from finetec.data.fillers import FILLERS, fill
    from finetec.data.pipeline import ClipPipeline, PipelineConfig
    from finetec.data.synthetic import make_dataset

    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                     "python": platform.python_version(), "numpy": np.__version__, "make_dataset": {},
                     "fill_ms": {}, "pipeline_ms": None}
    print(f"# finetec data benchmarks ({results['machine']}, Python {results['python']}, NumPy {np.__version__})\n")
    print(f"| layout | clips | best (s) | median (s) |\n|---|---|---|---|")
    for layout in ("coco17", "ntu25"):
        times = _time(lambda: make_dataset(layout, clips=args.clips, seed=0), args.repeats)
        results["make_dataset"][layout] = {"clips": args.clips, "best_s": min(times), "median_s": statistics.median(times)}
        print(f"| {layout} | {args.clips} | {min(times):.2f} | {statistics.median(times):.2f} |")

    ds = make_dataset("ntu25", clips=56, seed=0, frames=64)
    kp = ds[0].keypoint[:, :64]
    mask = ds[0].mask[:, :64]
    x, m = corrupt(kp, mask, "severe", "random", test_rng(0, "bench", "severe", "random"))
    print(f"\n| filler | ms per (1, 64, 25, 3) clip, severe |\n|---|---|")
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
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
