"""Inference speed: `predict` clips/s and `stream` per-prediction latency, on CPU by default.

For each model it measures, through the public API (``finetec.load`` -> ``Predictor``):

- predict throughput: ``Predictor.probabilities`` over N synthetic clips (preprocessing included),
  at batch size 1 and 32, in clips per second; also the share of time spent in preprocessing;
- stream latency: ``StreamRecognizer.push`` with ``every=1`` over a synthetic frame stream (window =
  the clip length), the median and 95th percentile of the per-prediction latency in milliseconds.

Models: ``--ckpt DIR`` (repeatable) for trained checkpoints; without it, UNTRAINED models built from
the CPU configs ``configs/{stgcn,stgcnpp,ctrgcn}_j_t32_synthetic.yaml`` (their model sections, layout
coco17, 14 classes) plus a FineTec model on the ST-GCN++ CPU backbone with an untrained completion
module. Untrained weights run at the same speed as trained ones.

    python benchmarks/bench_inference.py                      # CPU configs, prints a Markdown table
    python benchmarks/bench_inference.py --ckpt runs/x/best --clips 256 --out docs/inference_speed.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CPU_CONFIGS = ("stgcn_j_t32_synthetic", "stgcnpp_j_t32_synthetic", "ctrgcn_j_t32_synthetic")


def _config_checkpoint(name: str, folder: Path) -> Path:
    """An untrained checkpoint of the model section of configs/NAME.yaml, with the engine's metadata."""
    import torch

    from finetec.engine.checkpoint import save_checkpoint
    from finetec.engine.config import load_config
    from finetec.layouts import get_layout
    from finetec.models.registry import create_model, model_options

    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    layout = get_layout("coco17")
    C, M = 2, 1
    feats = tuple(cfg.pipeline.features)
    params = dict(cfg.model.params)
    if "clip_len" in model_options(cfg.model.name):
        params.setdefault("clip_len", cfg.pipeline.clip_len)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model(cfg.model.name, num_classes=14, layout=layout, in_channels=C * len(feats), **params)
    return save_checkpoint(folder / name, model, _info(cfg.to_dict(), layout, cfg.pipeline.clip_len, C, M,
                                                      C * len(feats)))


def _finetec_checkpoint(folder: Path, clip_len: int = 32) -> Path:
    import torch

    from finetec.engine.checkpoint import save_checkpoint
    from finetec.engine.config import load_config
    from finetec.layouts import get_layout
    from finetec.models.registry import create_model

    base = load_config(ROOT / "configs" / "stgcnpp_j_t32_synthetic.yaml")
    layout = get_layout("coco17")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model("finetec", num_classes=14, layout=layout, in_channels=2, clip_len=clip_len,
                             backbone="stgcnpp", backbone_overrides=dict(base.model.params),
                             allow_untrained_completion=True)
    cfg = base.to_dict()
    cfg["model"] = {"name": "finetec"}
    cfg["pipeline"] = {**cfg["pipeline"], "filler": "none", "features": ["joint"], "clip_len": clip_len}
    return save_checkpoint(folder / "finetec_stgcnpp", model, _info(cfg, layout, clip_len, 2, 1, 2))


def _info(config: dict, layout, clip_len: int, C: int, M: int, in_channels: int) -> dict[str, Any]:
    return {"task": "classification", "config": config, "class_names": [f"class{i}" for i in range(14)],
            "layout": layout.to_dict(), "dims": {"num_persons": M, "num_joints": layout.num_joints, "coords": C,
                                                 "in_channels": in_channels},
            "clip_len": clip_len, "epoch": 0, "metrics": {}, "seed": 0}


def bench_predict(pred, ds, batch_size: int, repeats: int = 2) -> dict[str, float]:
    """clips/s of Predictor.probabilities over ``ds`` (best of ``repeats``) and the preprocessing share."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred.probabilities(ds, batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    pred.preprocess(ds)
    prep = time.perf_counter() - t0
    return {"clips_per_s": len(ds) / best, "preprocess_share": min(1.0, prep / best)}


def bench_stream(pred, frames: np.ndarray, every: int = 1) -> dict[str, float]:
    """Per-prediction latency (ms) of StreamRecognizer.push over ``frames`` (T, V, C)."""
    from finetec.streaming import StreamRecognizer

    rec = StreamRecognizer(pred, window=pred.clip_len, every=every)
    lat = []
    for f in frames:
        p = rec.push(f)
        if p is not None:
            lat.append(p.latency_ms)
    a = np.array(lat[3:] if len(lat) > 6 else lat)  # the first calls warm up allocators
    return {"predictions": len(lat), "latency_ms_median": float(np.median(a)),
            "latency_ms_p95": float(np.percentile(a, 95))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", action="append", default=[], help="a trained checkpoint (repeatable)")
    ap.add_argument("--clips", type=int, default=128, help="clips for the predict throughput (default 128)")
    ap.add_argument("--frames", type=int, default=160, help="frames streamed (default 160)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--no-finetec", action="store_true", help="skip the FineTec model")
    ap.add_argument("--out", default=None, help="also write the Markdown table (and a .json beside it)")
    args = ap.parse_args(argv)

    import torch

    import finetec
    from finetec.data import open_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpts: list[tuple[str, str]] = [(c, "trained checkpoint") for c in args.ckpt]
        if not ckpts:
            ckpts = [(str(_config_checkpoint(n, Path(tmp))), "untrained, configs/" + n + ".yaml") for n in CPU_CONFIGS]
            if not args.no_finetec:
                ckpts.append((str(_finetec_checkpoint(Path(tmp))), "untrained FineTec, stgcnpp CPU backbone"))
        for path, what in ckpts:
            pred = finetec.load(path, device=args.device)
            spec = f"synthetic:{pred.layout.name}?clips={args.clips}&seed=1"
            if pred.layout.name not in ("coco17", "ntu25"):
                print(f"skip {path}: no synthetic data for layout {pred.layout.name}", file=sys.stderr)
                continue
            ds = open_dataset(spec)
            b1 = bench_predict(pred, ds.subset(np.arange(min(32, len(ds)))), batch_size=1)
            b32 = bench_predict(pred, ds, batch_size=32)
            s = ds[0].keypoint[0]
            frames = np.concatenate([s] * (args.frames // len(s) + 1))[: args.frames]
            st = bench_stream(pred, frames)
            n_params = sum(p.numel() for p in pred.model.parameters())
            rows.append({"model": pred.model_name, "source": what, "params_M": n_params / 1e6,
                         "clip_len": pred.clip_len, "predict_bs1_clips_s": b1["clips_per_s"],
                         "predict_bs32_clips_s": b32["clips_per_s"], "preprocess_share_bs32": b32["preprocess_share"],
                         **{f"stream_{k}": v for k, v in st.items()}})
            print(f"done {pred.model_name}: {rows[-1]}", file=sys.stderr)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch "
               f"{torch.__version__}, {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}, "
               f"device {args.device}")
    lines = [f"Inference speed ({machine}; synthetic coco17 2D clips; "
             f"`python benchmarks/bench_inference.py{' ' + ' '.join(argv or sys.argv[1:]) if (argv or sys.argv[1:]) else ''}`)",
             "",
             "| model | weights | params (M) | T | predict bs=1 (clips/s) | predict bs=32 (clips/s) | "
             "preprocessing share | stream latency median (ms) | stream p95 (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['source']} | {r['params_M']:.3f} | {r['clip_len']} | "
                     f"{r['predict_bs1_clips_s']:.1f} | {r['predict_bs32_clips_s']:.1f} | "
                     f"{100 * r['preprocess_share_bs32']:.0f} % | {r['stream_latency_ms_median']:.1f} | "
                     f"{r['stream_latency_ms_p95']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from finetec.fileio import write_text_atomic

        write_text_atomic(args.out, text)
        write_text_atomic(Path(args.out).with_suffix(".json"), json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
