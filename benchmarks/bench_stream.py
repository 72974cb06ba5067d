"""Streaming: the full-window mode against the incremental mode, accuracy and cost, same run.

    python benchmarks/bench_stream.py [--model penn-action-stgcnpp] [--data ../shared/data/penn_action]
        [--clip-step 4] [--modes "spread=1 spread=4 ..."] [--timing-models zoo,stgcnpp]
        [--timing-modes "spread=1 spread=4"] [--finetec penn-action-finetec] [--rounds 3]

Accuracy (``--clip-step 0`` skips it): every ``clip-step``-th clip of the checkpoint's test split
is streamed frame by frame (its own missing joints as NaN) through `StreamRecognizer` in the
full-window mode and in each incremental mode of ``--modes`` (``delay=F``, ``spread=N``, joined
with ``+``; ``lookahead=A`` cuts every temporal kernel A frames ahead, an IncrementalGCN knob
kept for this comparison), one prediction per frame, window 64, warm-up min(64, clip length).
Printed: the top-1 accuracy of each mode's prediction at the clip's last frame, its agreement
with the full-window mode's (last frame; every prediction), ms per prediction.

Cost: ``--timing-models`` (``zoo`` = the checkpoint above; ``stgcnpp`` / ``stgcn`` = the
published model size, untrained, ntu25 3D, 60 classes: speed does not depend on the weights),
one person, a 200-frame synthetic stream (10 % of the joints missing), the full-window mode and
each ``--timing-modes`` mode alternated ``--rounds`` times in this process, one torch thread;
ms per prediction after the first (the incremental mode's first prediction runs its whole
window once, as the full-window mode does): mean (the cost of the incremental mode is periodic,
a median would pick its light frames) and 95th percentile. ``--finetec MODEL``
also times a FineTec checkpoint, which streams in the full-window mode only. The 1-minute load
average is printed before and after.
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
from finetec.streaming import StreamRecognizer  # noqa: E402


def _frames(kp: np.ndarray, mask: np.ndarray) -> list:
    """(M, T, V, C) + mask -> per frame (M, V, C) with NaN for missing joints, None for a lost frame."""
    out = []
    for t in range(kp.shape[1]):
        f = np.where(mask[:, t, :, None], kp[:, t], np.nan).astype(np.float32)
        out.append(None if not mask[:, t].any() else f)
    return out


def _stream(rec: StreamRecognizer, frames: list) -> list:
    rec.reset()
    return [p for f in frames if (p := rec.push(f)) is not None]


def accuracy(pred: Predictor, data: str, step: int, modes: list[tuple[str, dict | None]], window: int) -> None:
    from finetec.engine.evaluate import open_eval_data

    ds, _ = open_eval_data(pred.info, data)
    idx = ds.split_indices(pred.info.test_split)[::step]
    modes = [("full-window", None)] + modes
    rows = []   # per clip: frames, label, per mode (top-1 per prediction)
    t0 = time.perf_counter()
    for i in idx:
        s = ds[int(i)]
        frames = _frames(s.keypoint, s.mask)
        warm = min(window, len(frames))
        tops, ms = {}, {}
        for name, opts in modes:
            ps = _stream(make(pred, window, opts, every=1, warmup=warm, top_k=1), frames)
            tops[name] = [pred.class_names.index(p.top_k[0][0]) if p.top_k else -1 for p in ps]
            ms[name] = [p.latency_ms for p in ps[1:]]
        rows.append((len(frames), int(s.label), tops, ms))
    print(f"\nAccuracy: {len(idx)} clips (every {step}th of split {pred.info.test_split!r}), window {window}, "
          f"one prediction per frame, {time.perf_counter() - t0:.0f} s")
    for title, sub in ((f"all {len(rows)} clips", rows),
                       (f"the {sum(r[0] >= window for r in rows)} clips of at least {window} frames (the others "
                        "give one prediction, at their last frame, from a window shorter than W)",
                        [r for r in rows if r[0] >= window])):
        print(f"\n{title}:\n")
        print("| mode | top-1, last frame | top-1, every prediction | agreement with full-window, last frame "
              "| agreement, every prediction | predictions | ms per prediction (mean) |")
        print("|---|---|---|---|---|---|---|")
        for name, _ in modes:
            last = np.mean([r[2][name][-1] == r[1] for r in sub])
            every = np.mean([t == r[1] for r in sub for t in r[2][name]])
            agree_last = np.mean([r[2][name][-1] == r[2]["full-window"][-1] for r in sub])
            agree = np.mean([a == b for r in sub for a, b in zip(r[2][name], r[2]["full-window"])])
            n = sum(len(r[2][name]) for r in sub)
            ms = [m for r in sub for m in r[3][name]]
            print(f"| {name} | {100 * last:.1f} % | {100 * every:.1f} % | {100 * agree_last:.1f} % | {100 * agree:.1f} % "
                  f"| {n} | {statistics.fmean(ms) if ms else float('nan'):.2f} |")


def _synthetic_frames(pred: Predictor, T: int, rng: np.random.Generator) -> list:
    V, C = pred.layout.num_joints, pred.dim
    base = rng.normal(0, 40, size=(1, 1, V, C)) + 300
    t = np.arange(T)[None, :, None, None]
    kp = (base + rng.normal(0, 10, size=(1, 1, V, C)) * np.sin(rng.uniform(0.1, 0.4, size=(1, 1, V, 1)) * t))
    mask = rng.random((1, T, V)) > 0.1
    return _frames(kp.astype(np.float32), mask)


def _published(name: str, folder: Path) -> Predictor:
    from finetec.layouts import get_layout
    from finetec.models.checkpoint import save_checkpoint
    from finetec.models.registry import create_model

    torch.manual_seed(0)
    net = create_model(name, num_classes=60, layout="ntu25", in_channels=3, num_person=1)
    info = {"config": {"task": "classification", "seed": 0,
                       "pipeline": {"clip_len": 64, "filler": "linear", "features": ["joint"], "max_persons": 1}},
            "class_names": [f"c{i}" for i in range(60)], "layout": get_layout("ntu25").to_dict(), "clip_len": 64,
            "seed": 0, "epoch": 0, "metrics": {}}
    return Predictor.from_checkpoint(save_checkpoint(folder / name, net, info))


def parse_modes(text: str) -> list[tuple[str, dict]]:
    """"delay=0 spread=4 delay=16+spread=4" -> [(label, {option: int})]; ``lookahead=A`` (or
    A1/A2/... per block) is a measurement knob of IncrementalGCN, not of StreamRecognizer."""
    out = []
    for tok in text.split():
        opts: dict = {}
        for kv in tok.split("+"):
            k, v = kv.split("=")
            opts[k] = [int(x) if x != "-" else None for x in v.split("/")] if "/" in v else int(v)
        out.append(("incremental, " + ", ".join(f"{k} {v}" for k, v in opts.items()), opts))
    return out


def make(pred: Predictor, window: int, opts: dict | None, **kw) -> StreamRecognizer:
    """A recognizer in the full-window mode (opts None) or the incremental mode with ``opts``."""
    if opts is None:
        return StreamRecognizer(pred, window=window, **kw)
    opts = dict(opts)
    lookahead = opts.pop("lookahead", None)
    rec = StreamRecognizer(pred, window=window, incremental=True, **opts, **kw)
    if lookahead is not None:
        from finetec.streaming import IncrementalStream

        rec.incremental = IncrementalStream(pred, window, **opts)
        rec.incremental.net = type(rec.incremental.net)(pred.model, window=window, lookahead=lookahead, **opts)
    return rec


def timing(preds: dict[str, Predictor], rounds: int, modes: list, window: int, finetec: Predictor | None) -> None:
    rng = np.random.default_rng(0)
    print(f"\nCost: {window}-frame window, one prediction per frame, 200-frame stream, {rounds} alternated rounds; "
          "ms per prediction, mean (95th percentile); speed-up of the means\n")
    print("| model | full-window | " + " | ".join(m for m, _ in modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    extra = [(f"{finetec.model_name} (full-window only)", finetec)] if finetec else []
    for name, pred in list(preds.items()) + extra:
        frames = _synthetic_frames(pred, 200, rng)
        recs = [make(pred, window, None, every=1)] + ([make(pred, window, o, every=1) for _, o in modes]
                                                      if pred is not finetec else [])
        for r in recs:
            r.warm_up()
        lat: list[list[float]] = [[] for _ in recs]
        for _ in range(rounds):
            for r, out in zip(recs, lat):
                out += [p.latency_ms for p in _stream(r, frames)[1:]]   # the first (anchor) apart
        mean = [statistics.fmean(v) for v in lat]
        cells = [f"{m:.2f} ({np.percentile(v, 95):.2f})" for m, v in zip(mean, lat)]
        cells = cells[:1] + [f"{c}, {mean[0] / m:.1f}x" for c, m in zip(cells[1:], mean[1:])]
        print(f"| {name} | " + " | ".join(cells + ["-"] * (len(modes) + 1 - len(cells))) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="penn-action-stgcnpp", help="zoo name or checkpoint (default: %(default)s)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "penn_action"))
    p.add_argument("--clip-step", type=int, default=4, help="stream every N-th test clip (0: no accuracy run)")
    p.add_argument("--modes", default="spread=1 spread=2 spread=4 spread=1+delay=16 spread=1+lookahead=0",
                   help="incremental modes to compare, space-separated; options joined by + (default: %(default)s)")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--timing-models", default="zoo,stgcnpp", help="comma list of zoo, stgcnpp, stgcn ('' = none)")
    p.add_argument("--timing-modes", default="spread=1 spread=2 spread=4",
                   help="incremental modes to time (default: %(default)s)")
    p.add_argument("--finetec", default=None, metavar="MODEL", help="also time this FineTec checkpoint (full-window)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    from finetec.zoo import checkpoint_from_args

    def load(spec: str) -> Predictor:
        return Predictor.from_checkpoint(checkpoint_from_args(None, spec) if not os.path.exists(spec) else spec)

    load0, t0 = os.getloadavg()[0], time.perf_counter()
    print(f"$ python benchmarks/bench_stream.py {' '.join(sys.argv[1:])}")
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} logical CPUs, 1-minute load average {load0:.1f}")
    pred = load(args.model)
    if args.clip_step > 0:
        if not os.path.isdir(args.data):
            print(f"accuracy skipped: no dataset at {args.data}")
        else:
            accuracy(pred, args.data, args.clip_step, parse_modes(args.modes), args.window)
    names = [n for n in args.timing_models.split(",") if n]
    if names or args.finetec:
        with tempfile.TemporaryDirectory() as tmp:
            preds = {(args.model if n == "zoo" else f"{n} (published size, untrained)"):
                     (pred if n == "zoo" else _published(n, Path(tmp))) for n in names}
            timing(preds, args.rounds, parse_modes(args.timing_modes), args.window,
                   load(args.finetec) if args.finetec else None)
    print(f"\n{time.perf_counter() - t0:.0f} s; 1-minute load average {load0:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
